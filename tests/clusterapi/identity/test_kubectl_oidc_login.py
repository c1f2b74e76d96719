"""kubectl logs in through the issuer with ``manage.py oidc-login`` (an exec credential plugin).

A live Berth whose ID tokens live 10 seconds; ``manage.py kubeconfig --oidc`` writes the
kubeconfig. The first ``kubectl auth whoami`` starts the device flow: the plugin prints the
code, a scripted Chromium logs in at the issuer and approves it while kubectl waits. Later
calls use the cached token, refresh it silently once it has expired, and log in again when
the refresh token is refused.
"""

from __future__ import annotations

import json
import os
import queue
import re
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
import yaml

from tests.live import KUBECTL, LiveServer

pytestmark = pytest.mark.e2e

PASSWORD = "device-pass-7"
ID_TOKEN_SECONDS = 10
CODE_RE = re.compile(r"open (\S+) and enter the code (\S+)")


@pytest.fixture(scope="module")
def berth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("berth")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    identity = {
        # No grace period for a replayed refresh token: the replay below must be refused.
        "expiry": {"idTokens": f"{ID_TOKEN_SECONDS}s", "refreshTokens": {"reuseInterval": "0s"}},
        "staticPasswords": [
            {
                "email": "dev@example.com",
                "hash": hashed,
                "username": "dev",
                "userID": "dev-1",
                "groups": ["developers", "ops"],
            }
        ],
    }
    config = data_dir / "berth.yaml"
    config.write_text(yaml.safe_dump({"identity": identity}))
    server = LiveServer(data_dir, env={"BERTH_CONFIG": str(config)}).start()
    try:
        yield server
    finally:
        server.stop()


class Kubectl:
    """kubectl with the OIDC kubeconfig and a private token cache for the plugin."""

    def __init__(self, kubeconfig: Path, work: Path) -> None:
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "BERTH_OIDC_CACHE_DIR": str(work / "oidc-cache"),
        }
        self.cache_dir = work / "oidc-cache"
        self.kube_cache = work / "kube-cache"

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(KUBECTL), "--cache-dir", str(self.kube_cache), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def cached(self) -> dict[str, Any]:
        (path,) = self.cache_dir.glob("*.json")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(self.cache_dir.stat().st_mode) == 0o700
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def write_cache(self, data: dict[str, Any]) -> None:
        (path,) = self.cache_dir.glob("*.json")
        path.write_text(json.dumps(data))


def stderr_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def approve_in_browser(chromium: Any, verification_uri: str, user_code: str) -> None:
    """What a person does with the code: log in at the issuer and approve the device."""
    context = chromium.new_context(ignore_https_errors=True)
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        page.goto(f"{verification_uri}?user_code={user_code}")
        page.wait_for_url(re.compile(r"/dex/auth/local\?req="))
        page.fill("#login", "dev")
        page.fill("#password", PASSWORD)
        page.click("#submit-login")
        page.get_by_role("button", name="Approve").click()
        page.get_by_text("The device is now logged in").wait_for()
    finally:
        context.close()


def whoami_with_device_login(kubectl: Kubectl, chromium: Any) -> tuple[str, str]:
    """``kubectl auth whoami`` that needs the device flow; its stdout and stderr."""
    process = kubectl.start("auth", "whoami")
    lines = stderr_lines(process)
    seen: list[str] = []
    deadline = time.monotonic() + 60
    found = None
    while found is None and time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            assert process.poll() is None, "".join(seen)
            continue
        found = CODE_RE.search(seen[-1])
    assert found is not None, "".join(seen)
    approve_in_browser(chromium, found.group(1), found.group(2))
    stdout, _ = process.communicate(timeout=60)
    while not lines.empty():
        seen.append(lines.get())
    assert process.returncode == 0, (stdout, "".join(seen))
    return stdout, "".join(seen)


def whoami(kubectl: Kubectl) -> tuple[str, str]:
    """``kubectl auth whoami`` that must not need anyone (no prompt)."""
    process = kubectl.start("auth", "whoami")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, (stdout, stderr)
    return stdout, stderr


def test_kubectl_logs_in_with_the_device_flow_and_refreshes_silently(
    berth: LiveServer, chromium: Any, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "oidc.kubeconfig"
    kubeconfig.write_text(berth.manage("kubeconfig", "--oidc"))
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["exec"]
    assert user["apiVersion"] == "client.authentication.k8s.io/v1"
    assert user["interactiveMode"] == "IfAvailable"
    assert "oidc-login" in user["args"]
    kubectl = Kubectl(kubeconfig, tmp_path)

    # First use: the device flow, approved in the browser while kubectl waits.
    stdout, stderr = whoami_with_device_login(kubectl, chromium)
    assert re.search(r"Username\s+dev@example.com", stdout), stdout
    assert "oidc:developers" in stdout and "oidc:ops" in stdout, stdout
    first = kubectl.cached()
    assert first["refresh_token"]

    # While the ID token is valid: straight from the cache.
    stdout, stderr = whoami(kubectl)
    assert "dev@example.com" in stdout and "enter the code" not in stderr
    assert kubectl.cached() == first

    # Once it has expired: refreshed without a prompt (and the refresh token rotated).
    expires = jwt.decode(first["id_token"], options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 1)
    stdout, stderr = whoami(kubectl)
    assert "dev@example.com" in stdout and "enter the code" not in stderr, stderr
    second = kubectl.cached()
    assert second["id_token"] != first["id_token"]
    assert second["refresh_token"] != first["refresh_token"]

    # A refresh token the issuer refuses (here: the rotated-away one, a replay that also
    # revokes its family) means a new login, not a failure.
    kubectl.write_cache({"id_token": first["id_token"], "refresh_token": first["refresh_token"]})
    stdout, stderr = whoami_with_device_login(kubectl, chromium)
    assert "cannot be refreshed" in stderr and "dev@example.com" in stdout
    assert kubectl.cached()["refresh_token"] not in (first["refresh_token"], ""), stderr
