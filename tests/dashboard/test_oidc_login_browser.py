"""The dashboard's OIDC login in real Chromium (Playwright, Debian's chromium).

A live Berth with a static password user and an LDAP connector on a private slapd: the
browser opens ``/ui/``, lands on the issuer's login page, logs in and comes back to the
dashboard as that user; RBAC decides with the token's groups (``oidc:`` prefix).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest
import yaml

from tests.clusterapi.identity import slapd as ldap_directory
from tests.dashboard.browser import submit_password
from tests.live import Kubectl, LiveServer

pytestmark = pytest.mark.e2e

STATIC_PASSWORD = "static-pass-9"


@pytest.fixture(scope="module")
def slapd() -> Iterator[ldap_directory.Slapd]:
    with ldap_directory.running() as server:
        yield server


@pytest.fixture(scope="module")
def berth(
    tmp_path_factory: pytest.TempPathFactory, slapd: ldap_directory.Slapd
) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("berth")
    hashed = bcrypt.hashpw(STATIC_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    config = data_dir / "berth.yaml"
    identity: dict[str, Any] = {
        "staticPasswords": [
            {
                "email": "static@example.com",
                "hash": hashed,
                "username": "static",
                "userID": "static-1",
                "name": "Static User",
                "groups": ["ops"],
            }
        ],
        "connectors": [ldap_directory.ldap_connector_config(slapd)],
    }
    config.write_text(yaml.safe_dump({"identity": identity}))
    server = LiveServer(data_dir, env={"BERTH_CONFIG": str(config)}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def admin(berth: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    kubectl = Kubectl(berth.admin_kubeconfig, tmp_path_factory.mktemp("kubecache"))
    # What the dashboard page needs (a non-resource URL: only a ClusterRole can grant it),
    # bound to two OIDC groups: the static user's "ops" and the LDAP group "berth-viewers".
    manifest = textwrap.dedent(
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
        metadata: {name: dashboard-viewers}
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dashboard-viewer}
        subjects:
        - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "oidc:ops"}
        - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "oidc:berth-viewers"}
        """
    )
    kubectl("apply", "-f", "-", input=manifest)
    return kubectl


def log_in(page: Any, berth: LiveServer, connector: str, username: str, password: str) -> None:
    """Open the dashboard, pick the connector on the issuer's page, submit the password."""
    page.goto(f"{berth.url}/ui/")
    # Two connectors: the issuer lists them (as dex does).
    page.wait_for_url(re.compile(r"/dex/auth\?"))
    page.get_by_role("link", name=f"Log in with {connector}").click()
    page.wait_for_url(re.compile(r"/dex/auth/[^?]+\?req="))
    submit_password(page, username, password)


def test_a_static_user_logs_in_through_the_issuer_and_out_again(
    page: Any, berth: LiveServer, admin: Kubectl
) -> None:
    log_in(page, berth, "Email", "static", STATIC_PASSWORD)
    page.wait_for_url(f"{berth.url}/ui/")
    assert page.locator("#user-name").inner_text() == "static@example.com"
    assert "oidc:ops" in page.locator("#user-groups").inner_text()
    assert "Deployment" in page.content()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sessionid"]["secure"] and cookies["sessionid"]["httpOnly"]
    assert cookies["sessionid"]["sameSite"] == "Lax"

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{berth.url}/ui/logged-out/")
    # Both sessions ended: the dashboard sends the browser back to the issuer's login.
    page.goto(f"{berth.url}/ui/")
    page.wait_for_url(re.compile(r"/dex/auth\?"))


def test_a_wrong_password_stays_on_the_issuer_page(
    page: Any, berth: LiveServer, admin: Kubectl
) -> None:
    log_in(page, berth, "Email", "static", "not-the-password")
    assert page.locator("[role=alert]").inner_text() == "Invalid username or password."
    assert "/dex/auth/local" in page.url


def test_an_ldap_user_whose_group_is_bound_sees_the_dashboard(
    page: Any, berth: LiveServer, admin: Kubectl
) -> None:
    log_in(page, berth, "Corporate LDAP", "jane", "jane-pass-1")
    page.wait_for_url(f"{berth.url}/ui/")
    assert page.locator("#user-name").inner_text() == "jane@example.org"
    assert "oidc:berth-viewers" in page.locator("#user-groups").inner_text()


def test_an_ldap_user_without_the_group_is_refused_by_rbac(
    page: Any, berth: LiveServer, admin: Kubectl
) -> None:
    log_in(page, berth, "Corporate LDAP", "john", "john-pass-1")
    page.wait_for_url(f"{berth.url}/ui/")
    body = page.locator("body").inner_text()
    assert 'User "john@example.org" cannot get path "/ui/"' in body
