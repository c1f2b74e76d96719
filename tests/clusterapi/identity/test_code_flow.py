"""The authorization-code flow with PKCE, end to end through the test client."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from clusterapi.identity import claims
from tests.clusterapi.identity.helpers import (
    CLI_REDIRECT,
    DASHBOARD_REDIRECT,
    DASHBOARD_SECRET,
    ISSUER,
    auth_params,
    code_for,
    get,
    location,
    log_in,
    pkce,
    post,
    query_of,
    token_request,
    tokens_for,
    verify,
)

pytestmark = pytest.mark.django_db


def test_discovery_describes_the_issuer(browser: Client) -> None:
    doc = get(browser, "/dex/.well-known/openid-configuration").json()
    assert doc["issuer"] == ISSUER
    assert doc["token_endpoint"] == f"{ISSUER}/token"
    assert doc["jwks_uri"] == f"{ISSUER}/keys"
    assert doc["device_authorization_endpoint"] == f"{ISSUER}/device/code"
    assert doc["end_session_endpoint"] == f"{ISSUER}/logout"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "urn:ietf:params:oauth:grant-type:device_code" in doc["grant_types_supported"]
    assert set(doc["scopes_supported"]) >= {"openid", "email", "profile", "groups"}


def test_code_flow_with_pkce_gives_a_verified_id_token(browser: Client, alice: User) -> None:
    body = tokens_for(browser, "alice", "alice-pass-1")
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    id_claims = verify(browser, body["id_token"])
    assert id_claims["iss"] == ISSUER
    assert id_claims["aud"] == "cli" and id_claims["azp"] == "cli"
    assert id_claims["nonce"] == "nonce-1"
    assert id_claims["sub"] == claims.subject(str(alice.pk), "local")
    assert id_claims["email"] == "alice@example.com" and id_claims["email_verified"] is True
    assert id_claims["name"] == "Alice Liddell"
    assert id_claims["preferred_username"] == "alice"
    assert id_claims["groups"] == ["devs"]
    assert id_claims["exp"] - id_claims["iat"] == 24 * 3600
    assert id_claims["at_hash"]
    userinfo = browser.get(
        "/dex/userinfo", secure=True, HTTP_AUTHORIZATION=f"Bearer {body['access_token']}"
    )
    assert userinfo.status_code == 200
    info = userinfo.json()
    assert info["sub"] == id_claims["sub"] and info["groups"] == ["devs"]
    anonymous = browser.get("/dex/userinfo", secure=True, HTTP_AUTHORIZATION="Bearer nope")
    assert anonymous.status_code == 401


def test_subject_encodes_user_and_connector_like_dex() -> None:
    # dex's IDTokenSubject{user_id: "CgR1c2VyEgVsb2NhbA" ...}: field 1 "user", field 2 "local".
    assert claims.subject("user", "local") == "CgR1c2VyEgVsb2NhbA"


def test_static_password_user_gets_its_groups(browser: Client) -> None:
    body = tokens_for(browser, "static@example.com", "static-pass-9")
    id_claims = verify(browser, body["id_token"])
    assert id_claims["email"] == "static@example.com"
    assert id_claims["groups"] == ["ops"]
    assert id_claims["sub"] == claims.subject("static-1", "local")


def test_logged_in_user_is_sent_back_without_a_form(browser: Client, alice: User) -> None:
    code_for(browser, "alice", "alice-pass-1")
    _, challenge = pkce()
    again = location(get(browser, "/dex/auth", **auth_params(challenge=challenge)))
    assert again.startswith(CLI_REDIRECT) and "code=" in again


def test_missing_verifier_is_invalid_grant(browser: Client, alice: User) -> None:
    code, _ = code_for(browser, "alice", "alice-pass-1")
    status, body = token_request(
        browser,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CLI_REDIRECT,
        client_id="cli",
    )
    assert (status, body["error"]) == (400, "invalid_grant")


def test_wrong_verifier_is_invalid_grant(browser: Client, alice: User) -> None:
    code, _ = code_for(browser, "alice", "alice-pass-1")
    other, _ = pkce()
    status, body = token_request(
        browser,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CLI_REDIRECT,
        client_id="cli",
        code_verifier=other,
    )
    assert (status, body["error"]) == (400, "invalid_grant")


def test_public_client_without_pkce_is_refused(browser: Client, alice: User) -> None:
    response = get(browser, "/dex/auth", **auth_params())
    query = query_of(location(response))
    assert query["error"] == "invalid_request" and query["state"] == "state-1"


def test_plain_pkce_is_refused(browser: Client) -> None:
    params = auth_params(code_challenge="x" * 43, code_challenge_method="plain")
    query = query_of(location(get(browser, "/dex/auth", **params)))
    assert query["error"] == "invalid_request"


def test_unregistered_redirect_uri_is_shown_not_followed(browser: Client) -> None:
    _, challenge = pkce()
    for uri in (CLI_REDIRECT + "/evil", "http://localhost:8000/callback/", "https://evil.example/"):
        response = get(browser, "/dex/auth", **auth_params(challenge=challenge, redirect_uri=uri))
        assert response.status_code == 400
        assert b"redirect" in response.content.lower()


def test_token_redirect_uri_must_match_the_code(browser: Client, alice: User) -> None:
    code, verifier = code_for(browser, "alice", "alice-pass-1")
    status, body = token_request(
        browser,
        grant_type="authorization_code",
        code=code,
        redirect_uri="http://localhost:8000/other",
        client_id="cli",
        code_verifier=verifier,
    )
    assert (status, body["error"]) == (400, "invalid_grant")


def test_reused_code_is_refused_and_revokes_its_tokens(browser: Client, alice: User) -> None:
    code, verifier = code_for(browser, "alice", "alice-pass-1")
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CLI_REDIRECT,
        "client_id": "cli",
        "code_verifier": verifier,
    }
    status, first = token_request(browser, **data)
    assert status == 200
    status, second = token_request(browser, **data)
    assert (status, second["error"]) == (400, "invalid_grant")
    status, refreshed = token_request(
        browser, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id="cli"
    )
    assert (status, refreshed["error"]) == (400, "invalid_grant")


def test_confidential_client_with_secret_and_optional_pkce(browser: Client, alice: User) -> None:
    params = auth_params(client_id="dashboard", redirect_uri=DASHBOARD_REDIRECT)
    done = log_in(browser, params, "alice", "alice-pass-1")
    code = query_of(done)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": DASHBOARD_REDIRECT}
    wrong = post(browser, "/dex/token", data, HTTP_AUTHORIZATION=_basic("dashboard", "nope"))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    ok = post(
        browser, "/dex/token", {**data, "client_id": "dashboard", "client_secret": DASHBOARD_SECRET}
    )
    assert ok.status_code == 200, ok.json()
    assert verify(browser, ok.json()["id_token"], audience="dashboard")["aud"] == "dashboard"


def test_login_form_rejects_a_wrong_password(browser: Client, alice: User) -> None:
    _, challenge = pkce()
    login_url = location(get(browser, "/dex/auth", **auth_params(challenge=challenge)))
    response = post(browser, login_url, {"login": "alice", "password": "wrong"})
    assert response.status_code == 401
    assert b"Invalid username or password" in response.content


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
