"""The client side of the issuer tests: PKCE, the login, the token exchange, verification."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import jwt
from django.test import Client

if TYPE_CHECKING:
    # The test client's response type: an HttpResponse with ``json()``, ``templates`` etc.
    # It only exists in django-stubs, so it can only be imported for the type checker.
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

ISSUER = "https://testserver/dex"
DASHBOARD_SECRET = "dashboard-secret-123"
DASHBOARD_REDIRECT = "https://testserver/ui/oidc/callback"
DASHBOARD_LOGOUT = "https://testserver/ui/"
CLI_REDIRECT = "http://localhost:8000/callback"
SCOPES = "openid email profile groups offline_access"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def get(browser: Client, url: str, **params: Any) -> TestResponse:
    return browser.get(url, params, secure=True)


def post(browser: Client, url: str, data: dict[str, Any], **extra: Any) -> TestResponse:
    return browser.post(url, data, secure=True, **extra)


def location(response: TestResponse) -> str:
    assert response.status_code == 302, (response.status_code, response.content[:500])
    return str(response["Location"])


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def auth_params(
    client_id: str = "cli",
    redirect_uri: str = CLI_REDIRECT,
    challenge: str | None = None,
    **extra: str,
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
        "state": "state-1",
        "nonce": "nonce-1",
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return params


def log_in(browser: Client, params: dict[str, str], username: str, password: str) -> str:
    """Run /auth → login form → back to /auth; the URL the issuer finally redirects to."""
    login_url = location(get(browser, "/dex/auth", **params))
    assert urlsplit(login_url).path == "/dex/auth/local"
    form = get(browser, login_url)
    assert form.status_code == 200 and b'name="password"' in form.content
    back = location(post(browser, login_url, {"login": username, "password": password}))
    return location(get(browser, back))


def code_for(browser: Client, username: str, password: str, **kwargs: Any) -> tuple[str, str]:
    """A code for the public ``cli`` client, and its PKCE verifier."""
    verifier, challenge = pkce()
    done = log_in(browser, auth_params(challenge=challenge, **kwargs), username, password)
    query = query_of(done)
    assert done.startswith(CLI_REDIRECT) and query["state"] == "state-1", done
    return query["code"], verifier


def token_request(browser: Client, **data: str) -> tuple[int, dict[str, Any]]:
    response = post(browser, "/dex/token", data)
    return response.status_code, response.json()


def tokens_for(browser: Client, username: str, password: str) -> dict[str, Any]:
    code, verifier = code_for(browser, username, password)
    status, body = token_request(
        browser,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CLI_REDIRECT,
        client_id="cli",
        code_verifier=verifier,
    )
    assert status == 200, body
    return body


def verify(browser: Client, id_token: str, audience: str = "cli") -> dict[str, Any]:
    """Verify an ID token with the issuer's published JWKS (PyJWT), as a relying party does."""
    jwks = get(browser, "/dex/keys").json()
    kid = jwt.get_unverified_header(id_token)["kid"]
    entry = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        id_token,
        jwt.PyJWK(entry).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    return claims
