"""The device authorization grant (RFC 8628), as ``manage.py oidc-login`` will use it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from clusterapi.identity.models import DeviceRequest
from tests.clusterapi.identity.helpers import ISSUER, location, post, verify

pytestmark = pytest.mark.django_db
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def start(cli: Client) -> dict[str, object]:
    response = post(cli, "/dex/device/code", {"client_id": "cli", "scope": "openid email groups"})
    assert response.status_code == 200, response.content
    body: dict[str, object] = response.json()
    return body


def poll(cli: Client, device_code: object) -> tuple[int, dict[str, object]]:
    response = post(
        cli,
        "/dex/token",
        {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": "cli"},
    )
    return response.status_code, response.json()


def approve(browser: Client, user_code: str, decision: str = "approve") -> None:
    entry = post(browser, "/dex/device", {"user_code": user_code})
    login_url = location(entry)
    back = location(post(browser, login_url, {"login": "alice", "password": "alice-pass-1"}))
    assert back.startswith("/dex/device?user_code=")
    page = browser.get(back, secure=True)
    assert page.status_code == 200 and b"Approve" in page.content
    done = post(browser, "/dex/device", {"user_code": user_code, "decision": decision})
    assert done.status_code == 200


def test_pending_then_approved_gives_tokens(browser: Client, alice: User) -> None:
    cli = Client()
    started = start(cli)
    assert started["verification_uri"] == f"{ISSUER}/device"
    assert started["expires_in"] == 300 and started["interval"] == 5
    status, body = poll(cli, started["device_code"])
    assert (status, body["error"]) == (400, "authorization_pending")
    approve(browser, str(started["user_code"]))
    status, body = poll(cli, started["device_code"])
    assert status == 200, body
    claims = verify(cli, str(body["id_token"]))
    assert claims["email"] == "alice@example.com" and claims["groups"] == ["devs"]
    # The device code gives one set of tokens only.
    status, _again = poll(cli, started["device_code"])
    assert status == 400


def test_polling_too_fast_is_slow_down(alice: User) -> None:
    cli = Client()
    started = start(cli)
    assert poll(cli, started["device_code"])[1]["error"] == "authorization_pending"
    assert poll(cli, started["device_code"])[1]["error"] == "slow_down"
    assert DeviceRequest.objects.get(user_code=started["user_code"]).interval == 10


def test_expired_device_code(alice: User) -> None:
    cli = Client()
    started = start(cli)
    DeviceRequest.objects.filter(user_code=started["user_code"]).update(
        expires=timezone.now() - timedelta(seconds=1)
    )
    status, body = poll(cli, started["device_code"])
    assert (status, body["error"]) == (400, "expired_token")


def test_denied_device(browser: Client, alice: User) -> None:
    cli = Client()
    started = start(cli)
    approve(browser, str(started["user_code"]), decision="deny")
    status, body = poll(cli, started["device_code"])
    assert (status, body["error"]) == (400, "access_denied")


def test_unknown_user_code_is_refused(browser: Client) -> None:
    response = post(browser, "/dex/device", {"user_code": "BCDF-GHJK"})
    assert response.status_code == 400 and b"not valid" in response.content
