"""Two kinds of trust between Berth instances, in real Chromium (Playwright, Debian's chromium).

Instance A is the identity provider: a static password user ``ext@example.com`` and a static
client ``berth-b``. Then:

- B's dashboard uses A as its issuer by configuration alone (``BERTH_OIDC_*``): B's own
  issuer is never involved;
- C's built-in issuer federates to A through an ``oidc`` connector: C's login page lists it,
  the user logs in at A, comes back through C's issuer and reaches C's dashboard with the
  groups A gave.

A is served as ``https://localhost:<port>`` and B and C as ``https://127.0.0.1:<port>``:
cookies are scoped by host, not port, so on one host the instances' ``sessionid`` cookies
would overwrite each other in the browser.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from tests.dashboard.browser import submit_password
from tests.live import Kubectl, LiveServer, free_port

pytestmark = pytest.mark.e2e

PASSWORD = "ext-pass-7"
CLIENT_SECRET = "berth-b-secret-0123456789"
CONNECTOR_NAME = "Berth A"

# What the dashboard page needs (a non-resource URL: only a ClusterRole grants it), bound to
# the group A gives the user, as B and C see it (their ``oidc:`` groups prefix).
DASHBOARD_VIEWERS = textwrap.dedent(
    """
    apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata: {name: dashboard-viewer}
    rules:
    - nonResourceURLs: ["/ui/", "/ui/*"]
      verbs: ["get"]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {name: platform-dashboard}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dashboard-viewer}
    subjects:
    - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "oidc:platform"}
    """
)


@dataclass
class Instances:
    a: LiveServer
    b: LiveServer
    c: LiveServer

    @property
    def a_url(self) -> str:
        return f"https://localhost:{self.a.port}"


def _write(path: Path, identity: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"identity": identity}))
    return path


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instances]:
    # Every port first: A's client lists B's and C's callbacks before anything starts.
    port_a, port_b, port_c = free_port(), free_port(), free_port()
    a_issuer = f"https://localhost:{port_a}/dex"
    a_dir, b_dir, c_dir = (tmp_path_factory.mktemp(name) for name in ("a", "b", "c"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    a_config = _write(
        a_dir / "berth.yaml",
        {
            "issuer": a_issuer,
            "staticPasswords": [
                {
                    "email": "ext@example.com",
                    "hash": hashed,
                    "username": "ext",
                    "userID": "ext-1",
                    "name": "External User",
                    "groups": ["platform", "auditors"],
                }
            ],
            "staticClients": [
                {
                    "id": "berth-b",
                    "name": "Berth B",
                    "secret": CLIENT_SECRET,
                    "redirectURIs": [
                        f"https://127.0.0.1:{port_b}/oidc/callback/",
                        f"https://127.0.0.1:{port_c}/dex/callback",
                    ],
                }
            ],
        },
    )
    a = LiveServer(a_dir, port=port_a, env={"BERTH_CONFIG": str(a_config)})
    b = LiveServer(
        b_dir,
        port=port_b,
        env={
            "BERTH_OIDC_ISSUER": a_issuer,
            "BERTH_OIDC_CLIENT_ID": "berth-b",
            "BERTH_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "BERTH_OIDC_CA_FILE": str(a.ca_file),
        },
    )
    c_config = _write(
        c_dir / "berth.yaml",
        {
            "connectors": [
                {
                    "type": "oidc",
                    "id": "berth-a",
                    "name": CONNECTOR_NAME,
                    "config": {
                        "issuer": a_issuer,
                        "clientID": "berth-b",
                        "clientSecret": CLIENT_SECRET,
                        "rootCA": str(a.ca_file),
                    },
                }
            ]
        },
    )
    c = LiveServer(c_dir, port=port_c, env={"BERTH_CONFIG": str(c_config)})
    started: list[LiveServer] = []
    try:
        started.append(a.start())  # B and C read A's CA file and discovery document
        started += [b, c]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(LiveServer.start, (b, c)))
        for server in (b, c):
            kubectl = Kubectl(server.admin_kubeconfig, server.data_dir / "kubecache")
            kubectl("apply", "-f", "-", input=DASHBOARD_VIEWERS)
        yield Instances(a, b, c)
    finally:
        for server in started:
            server.stop()


def record_requests(page: Any) -> list[str]:
    """Every URL the page requests from now on, redirects included."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def arrive(page: Any, url: str, *servers: LiveServer) -> None:
    """Wait for the browser to reach ``url``; else fail with where it is and the logs."""
    try:
        page.wait_for_url(url)
    except Exception as exc:
        logs = "\n".join(server.log()[-2000:] for server in servers)
        body = page.locator("body").inner_text()
        raise AssertionError(f"not at {url} but {page.url}:\n{body}\n{logs}") from exc


def log_in_at_a(page: Any, instances: Instances) -> None:
    """A has one connector (its password database): its login form comes straight up."""
    page.wait_for_url(re.compile(rf"^{re.escape(instances.a_url)}/dex/auth/local\?req="))
    submit_password(page, "ext@example.com", PASSWORD)


def test_b_dashboard_logs_in_at_a_as_its_external_issuer(page: Any, instances: Instances) -> None:
    b = instances.b
    seen = record_requests(page)
    page.goto(f"{b.url}/ui/")
    log_in_at_a(page, instances)
    arrive(page, f"{b.url}/ui/", instances.a, b)
    assert page.locator("#user-name").inner_text() == "ext@example.com"
    groups = page.locator("#user-groups").inner_text()
    assert "oidc:platform" in groups and "oidc:auditors" in groups
    assert "Deployment" in page.content()
    # Straight from B's dashboard to A's issuer: B's own issuer was never asked.
    asked = [u for u in seen if u.startswith(f"{instances.a_url}/dex/auth?")]
    assert asked and "client_id=berth-b" in asked[0]
    assert not any(u.startswith(f"{b.url}/dex/") for u in seen)


def test_c_federates_to_a_through_its_oidc_connector(page: Any, instances: Instances) -> None:
    c = instances.c
    seen = record_requests(page)
    page.goto(f"{c.url}/ui/")
    # C's own issuer, which lists its password database and the upstream connector.
    page.wait_for_url(re.compile(rf"^{re.escape(c.url)}/dex/auth\?"))
    page.get_by_role("link", name=f"Log in with {CONNECTOR_NAME}").click()
    log_in_at_a(page, instances)
    arrive(page, f"{c.url}/ui/", instances.a, c)
    assert page.locator("#user-name").inner_text() == "ext@example.com"
    groups = page.locator("#user-groups").inner_text()
    assert "oidc:platform" in groups and "oidc:auditors" in groups
    # The way there: C's connector asked A with PKCE and a nonce; A answered C's callback.
    upstream = next(u for u in seen if u.startswith(f"{instances.a_url}/dex/auth?"))
    assert "client_id=berth-b" in upstream and "code_challenge_method=S256" in upstream
    assert "nonce=" in upstream
    assert any(u.startswith(f"{c.url}/dex/callback?code=") for u in seen)


def test_c_refuses_a_callback_whose_state_it_did_not_issue(page: Any, instances: Instances) -> None:
    response = page.goto(f"{instances.c.url}/dex/callback?code=forged&state=forged")
    assert response.status == 400
    assert "Unknown or expired login state" in page.content()
