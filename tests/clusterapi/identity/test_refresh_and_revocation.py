"""Refresh tokens rotate on every use; replay revokes the family; revocation; logout."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.clusterapi.identity.helpers import (
    DASHBOARD_LOGOUT,
    ISSUER,
    auth_params,
    code_for,
    get,
    location,
    pkce,
    post,
    token_request,
    tokens_for,
    verify,
)

pytestmark = pytest.mark.django_db


def refresh(browser: Client, token: str) -> tuple[int, dict[str, object]]:
    return token_request(browser, grant_type="refresh_token", refresh_token=token, client_id="cli")


def test_refresh_rotates_and_issues_a_new_id_token(browser: Client, alice: User) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    status, second = refresh(browser, first["refresh_token"])
    assert status == 200, second
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    claims = verify(browser, str(second["id_token"]))
    assert claims["email"] == "alice@example.com" and claims["groups"] == ["devs"]
    status, _third = refresh(browser, str(second["refresh_token"]))
    assert status == 200


def test_refresh_picks_up_new_groups(browser: Client, alice: User) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    alice.groups.create(name="qa")
    status, second = refresh(browser, first["refresh_token"])
    assert status == 200
    assert verify(browser, str(second["id_token"]))["groups"] == ["devs", "qa"]


def test_reusing_a_rotated_refresh_token_revokes_the_family(browser: Client, alice: User) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    status, second = refresh(browser, first["refresh_token"])
    assert status == 200
    status, replay = refresh(browser, first["refresh_token"])
    assert (status, replay["error"]) == (400, "invalid_grant")
    # The newest token of the family is dead too, and so is its access token.
    status, newest = refresh(browser, str(second["refresh_token"]))
    assert (status, newest["error"]) == (400, "invalid_grant")
    info = browser.get(
        "/dex/userinfo", secure=True, HTTP_AUTHORIZATION=f"Bearer {second['access_token']}"
    )
    assert info.status_code == 401


def test_disabled_user_cannot_refresh(browser: Client, alice: User) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    alice.is_active = False
    alice.save()
    status, body = refresh(browser, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    alice.is_active = True
    alice.save()
    status, body = refresh(browser, first["refresh_token"])
    assert status == 400  # the family was revoked, not only refused once


def test_deleted_user_cannot_refresh(browser: Client, alice: User) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    alice.delete()
    status, body = refresh(browser, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


def test_refresh_token_of_another_client_is_refused(browser: Client, alice: User) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    status, body = token_request(
        browser,
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id="dashboard",
        client_secret="dashboard-secret-123",
    )
    assert (status, body["error"]) == (400, "invalid_grant")


def test_no_refresh_token_without_offline_access(browser: Client, alice: User) -> None:
    verifier, challenge = pkce()
    from tests.clusterapi.identity.helpers import CLI_REDIRECT, log_in, query_of

    params = auth_params(challenge=challenge, scope="openid email")
    code = query_of(log_in(browser, params, "alice", "alice-pass-1"))["code"]
    status, body = token_request(
        browser,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CLI_REDIRECT,
        client_id="cli",
        code_verifier=verifier,
    )
    assert status == 200 and "refresh_token" not in body
    assert "groups" not in verify(browser, str(body["id_token"]))


def test_revoking_a_refresh_token_ends_its_family(browser: Client, alice: User) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    response = post(
        browser, "/dex/token/revoke", {"token": first["refresh_token"], "client_id": "cli"}
    )
    assert response.status_code == 200
    status, body = refresh(browser, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    # Unknown tokens are answered 200 as well (RFC 7009 section 2.2).
    assert (
        post(browser, "/dex/token/revoke", {"token": "nope", "client_id": "cli"}).status_code == 200
    )


def test_revoking_an_access_token(browser: Client, alice: User) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {first['access_token']}"}
    assert browser.get("/dex/userinfo", secure=True, **auth).status_code == 200
    post(browser, "/dex/token/revoke", {"token": first["access_token"], "client_id": "cli"})
    assert browser.get("/dex/userinfo", secure=True, **auth).status_code == 401


def test_logout_with_id_token_hint_ends_the_session_and_redirects(
    browser: Client, alice: User
) -> None:
    first = tokens_for(browser, "alice", "alice-pass-1")
    assert verify(browser, first["id_token"])["iss"] == ISSUER
    response = get(
        browser,
        "/dex/logout",
        id_token_hint=first["id_token"],
        client_id="cli",
        post_logout_redirect_uri="https://evil.example/",
        state="x",
    )
    # cli has no registered post-logout URI: no redirect, but the session is over.
    assert response.status_code == 200 and b"logged out" in response.content
    _, challenge = pkce()
    again = location(get(browser, "/dex/auth", **auth_params(challenge=challenge)))
    assert again.startswith("/dex/auth/local?req=")


def test_logout_redirects_to_a_registered_uri_with_state(browser: Client, alice: User) -> None:
    from tests.clusterapi.identity.helpers import DASHBOARD_REDIRECT, log_in, query_of

    params = auth_params(client_id="dashboard", redirect_uri=DASHBOARD_REDIRECT)
    code = query_of(log_in(browser, params, "alice", "alice-pass-1"))["code"]
    _, body = token_request(
        browser,
        grant_type="authorization_code",
        code=code,
        redirect_uri=DASHBOARD_REDIRECT,
        client_id="dashboard",
        client_secret="dashboard-secret-123",
    )
    response = get(
        browser,
        "/dex/logout",
        id_token_hint=str(body["id_token"]),
        post_logout_redirect_uri=DASHBOARD_LOGOUT,
        state="bye",
    )
    assert location(response) == DASHBOARD_LOGOUT + "?state=bye"


def test_logout_without_hint_asks_for_confirmation(browser: Client, alice: User) -> None:
    code_for(browser, "alice", "alice-pass-1")
    page = get(browser, "/dex/logout")
    assert page.status_code == 200 and b"/dex/logout/confirm" in page.content
    # The user is still logged in until they confirm.
    _, challenge = pkce()
    assert "code=" in location(get(browser, "/dex/auth", **auth_params(challenge=challenge)))
    assert post(browser, "/dex/logout/confirm", {}).status_code == 200
    assert location(get(browser, "/dex/auth", **auth_params(challenge=challenge))).startswith(
        "/dex/auth/local"
    )
