"""The upstream ``oidc`` connector: configuration, ID-token checks, claim mapping, refresh,
and the redirect flow through the issuer's ``/auth/<connector>`` and ``/callback``.

The upstream is simulated in-process: its discovery document, key set and token endpoint
are replaced (``upstream`` fixture); the real thing, another Berth, is in
``tests/dashboard/test_external_issuer_browser.py``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.test import Client
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from clusterapi.identity import claims as id_claims
from clusterapi.identity import config as identity_config
from clusterapi.identity import connectors
from clusterapi.identity.config import ConnectorConfig, IdentityConfigError
from clusterapi.identity.connectors.base import ConnectorError, Identity, RedirectConnector
from clusterapi.identity.connectors.oidc import DEFAULT_SCOPES, OIDCConnector
from tests.clusterapi.identity.conftest import base_identity_config, use_config, write_config
from tests.clusterapi.identity.helpers import (
    CLI_REDIRECT,
    ISSUER,
    auth_params,
    get,
    location,
    pkce,
    query_of,
    token_request,
    verify,
)

UPSTREAM = "https://sso.example.com/dex"
PATH = "identity.connectors[0].config"


def make(**config: Any) -> OIDCConnector:
    data = {"issuer": UPSTREAM, "clientID": "berth", "clientSecret": "s3cret", **config}
    return OIDCConnector(ConnectorConfig(type="oidc", id="sso", name="SSO", config=data, path=PATH))


# --- configuration -----------------------------------------------------------------------------


def test_it_parses_dex_fields_with_dex_defaults() -> None:
    settings = make().settings
    assert settings.issuer == UPSTREAM and settings.client_id == "berth"
    assert settings.scopes == DEFAULT_SCOPES == ("openid", "profile", "email", "groups")
    assert settings.user_name_key == "name" and not settings.get_user_info
    assert not settings.insecure_skip_email_verified
    assert settings.claim_mapping.groups == "groups"
    # The redirect URI defaults to our own issuer's /callback.
    assert make().redirect_uri == ISSUER + "/callback"
    assert make(redirectURI="https://b.example/cb").redirect_uri == "https://b.example/cb"


def test_it_reads_the_client_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_SECRET", "from-env")
    connector = make(clientSecret="", clientSecretEnv="SSO_SECRET")
    assert connector.settings.client_secret == "from-env"


@pytest.mark.parametrize(
    ("config", "path", "reason"),
    [
        ({"issuer": "sso.example.com"}, "issuer", "not an absolute http(s) URL"),
        ({"clientID": ""}, "clientID", "is required"),
        ({"clientSecret": ""}, "clientSecret", "is required"),
        ({"clientSecret": "", "clientSecretEnv": "NOT_SET_X"}, "clientSecretEnv", "not set"),
        ({"scopes": ["profile"]}, "scopes", "must include openid"),
        ({"scopes": "openid"}, "scopes", "must be a list"),
        ({"rootCA": "/nonexistent/ca.crt"}, "rootCA", "cannot load"),
        ({"getUserInfo": "yes"}, "getUserInfo", "true or false"),
        ({"claimMapping": {"groups": 3}}, "claimMapping.groups", "must be a string"),
    ],
)
def test_it_reports_config_errors_with_their_path(
    config: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(IdentityConfigError) as caught:
        make(**config)
    assert caught.value.path == f"{PATH}.{path}" and reason in caught.value.reason


def test_it_is_registered_and_satisfies_the_redirect_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = base_identity_config()
    data["connectors"] = [
        {
            "type": "oidc",
            "id": "sso",
            "name": "SSO",
            "config": {"issuer": UPSTREAM, "clientID": "c", "clientSecret": "s"},
        }
    ]
    use_config(write_config(tmp_path / "oidc.yaml", data), monkeypatch)
    assert connectors.CONNECTOR_TYPES["oidc"] is OIDCConnector
    enabled = connectors.enabled(identity_config.get())
    assert list(enabled) == ["local", "sso"]
    assert isinstance(enabled["sso"], RedirectConnector)
    assert not isinstance(enabled["local"], RedirectConnector)


# --- claim mapping -----------------------------------------------------------------------------


def test_it_maps_standard_claims_to_an_identity() -> None:
    identity = make().identity(
        {
            "sub": "upstream-sub-1",
            "email": "ann@example.com",
            "email_verified": True,
            "name": "Ann Smith",
            "preferred_username": "ann",
            "groups": ["devs", "ops"],
        },
        refresh_token="rt-1",
    )
    assert identity == Identity(
        user_id="upstream-sub-1",
        username="ann",
        connector_id="sso",
        email="ann@example.com",
        email_verified=True,
        name="Ann Smith",
        groups=("devs", "ops"),
        connector_data={"refresh_token": "rt-1"},
    )
    # Our sub encodes the upstream user id with the connector id, as dex's does.
    assert id_claims.user_claims(identity, "openid")["sub"] == id_claims.subject(
        "upstream-sub-1", "sso"
    )


def test_it_follows_the_claim_mapping_and_user_name_key() -> None:
    connector = make(
        userNameKey="display",
        claimMapping={"preferred_username": "login", "email": "mail", "groups": "roles"},
    )
    identity = connector.identity(
        {
            "sub": "s",
            "login": "bob",
            "mail": "bob@example.com",
            "email_verified": False,
            "display": "Bob B",
            "roles": "admins",
            "groups": ["ignored"],
        }
    )
    assert (identity.username, identity.email, identity.name) == ("bob", "bob@example.com", "Bob B")
    assert identity.groups == ("admins",) and not identity.email_verified
    assert identity.connector_data == {}


def test_a_missing_email_verified_claim_is_refused_unless_skipped() -> None:
    unverified = {"sub": "s", "email": "c@example.com"}
    with pytest.raises(ConnectorError, match="email_verified"):
        make().identity(unverified)
    identity = make(insecureSkipEmailVerified=True).identity(unverified)
    assert identity.email_verified and identity.username == "c@example.com"


def test_without_username_or_email_the_subject_names_the_user() -> None:
    identity = make().identity({"sub": "only-sub", "groups": ["g", 3, ""]})
    assert identity.username == identity.name == "only-sub" and identity.groups == ("g",)


# --- a simulated upstream ----------------------------------------------------------------------


class Upstream:
    """Discovery, keys and token endpoint of a fake issuer, patched into the connector."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
        self.token_response: dict[str, Any] = {}
        self.token_requests: list[dict[str, Any]] = []
        document = {
            "issuer": UPSTREAM,
            "authorization_endpoint": f"{UPSTREAM}/auth",
            "token_endpoint": f"{UPSTREAM}/token",
            "jwks_uri": f"{UPSTREAM}/keys",
        }
        monkeypatch.setattr(OIDCConnector, "discovery", lambda self: document)
        fake = self  # the patched method reads the current key
        monkeypatch.setattr(OIDCConnector, "_keys", lambda _, fresh=False: KeySet([fake.key]))

        def fetch(session: OAuth2Session, url: str, **kwargs: Any) -> dict[str, Any]:
            self.token_requests.append({"url": url, **kwargs})
            if "error" in self.token_response:
                raise OAuthError(error=self.token_response["error"])
            return dict(self.token_response)

        monkeypatch.setattr(OAuth2Session, "fetch_token", fetch)
        monkeypatch.setattr(OAuth2Session, "refresh_token", fetch)

    def id_token(self, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": UPSTREAM, "aud": "berth", "sub": "u-1", "iat": now, "exp": now + 300}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode({"alg": alg, "kid": "k1"}, payload, self.key)


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Upstream:
    return Upstream(monkeypatch)


def test_it_accepts_a_valid_id_token(upstream: Upstream) -> None:
    claims = make().verify_id_token(upstream.id_token(nonce="n1"), nonce="n1")
    assert claims["sub"] == "u-1"


@pytest.mark.parametrize(
    ("claims", "nonce"),
    [
        ({"iss": "https://evil.example"}, "n1"),
        ({"aud": "someone-else"}, "n1"),
        ({"aud": ["berth", "other"]}, "n1"),  # several audiences without azp
        ({"azp": "other"}, "n1"),
        ({"exp": int(time.time()) - 3600}, "n1"),
        ({"nonce": "other"}, "n1"),
        ({"nonce": None}, "n1"),
        ({"sub": None}, None),
    ],
)
def test_it_refuses_a_bad_id_token(
    upstream: Upstream, claims: dict[str, Any], nonce: str | None
) -> None:
    token = upstream.id_token(**{"nonce": "n1", **claims})
    with pytest.raises(ConnectorError):
        make().verify_id_token(token, nonce=nonce)


def test_it_refuses_a_token_signed_by_another_key(upstream: Upstream) -> None:
    token = upstream.id_token(nonce="n1")
    upstream.key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    with pytest.raises(ConnectorError, match="signature"):
        make().verify_id_token(token, nonce="n1")


def test_it_refuses_a_symmetric_algorithm(upstream: Upstream) -> None:
    forged = jwt.encode(
        {"alg": "HS256"},
        {"iss": UPSTREAM, "aud": "berth", "sub": "x", "iat": 1, "exp": 2**31, "nonce": "n1"},
        OctKey.import_key("s3cret-s3cret-s3cret-s3cret-s3cret"),
    )
    with pytest.raises(ConnectorError):
        make().verify_id_token(forged, nonce="n1")


# --- refresh -----------------------------------------------------------------------------------


def _logged_in(refresh_token: str = "") -> Identity:
    data = {"refresh_token": refresh_token} if refresh_token else {}
    return Identity("u-1", "ann", "sso", "ann@example.com", True, "Ann", ("devs",), data)


def test_without_an_upstream_refresh_token_the_identity_is_kept(upstream: Upstream) -> None:
    identity = _logged_in()
    assert make().refresh(identity) == identity
    assert upstream.token_requests == []


def test_refresh_asks_the_upstream_and_maps_the_new_claims(upstream: Upstream) -> None:
    upstream.token_response = {
        "access_token": "at",
        "refresh_token": "rt-2",
        "id_token": upstream.id_token(
            email="ann@example.com", email_verified=True, preferred_username="ann", groups=["ops"]
        ),
    }
    refreshed = make().refresh(_logged_in("rt-1"))
    assert refreshed is not None
    assert upstream.token_requests[0]["refresh_token"] == "rt-1"
    assert refreshed.groups == ("ops",)
    assert refreshed.connector_data == {"refresh_token": "rt-2"}


def test_refresh_without_an_id_token_keeps_the_claims_and_rotates(upstream: Upstream) -> None:
    upstream.token_response = {"access_token": "at", "refresh_token": "rt-3"}
    refreshed = make().refresh(_logged_in("rt-1"))
    assert refreshed is not None and refreshed.groups == ("devs",)
    assert refreshed.connector_data == {"refresh_token": "rt-3"}


def test_refresh_ends_when_the_upstream_refuses_or_names_another_user(upstream: Upstream) -> None:
    upstream.token_response = {"error": "invalid_grant"}
    assert make().refresh(_logged_in("rt-1")) is None
    upstream.token_response = {"access_token": "at", "id_token": upstream.id_token(sub="u-2")}
    assert make().refresh(_logged_in("rt-1")) is None


# --- the redirect flow through the issuer --------------------------------------------------------


@pytest.fixture
def federated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: Upstream) -> Upstream:
    data = base_identity_config()
    data["connectors"] = [
        {
            "type": "oidc",
            "id": "sso",
            "name": "Corporate SSO",
            "config": {"issuer": UPSTREAM, "clientID": "berth", "clientSecret": "s3cret"},
        }
    ]
    use_config(write_config(tmp_path / "federated.yaml", data), monkeypatch)
    return upstream


def _connector_link(page: Any) -> str:
    """The login page's link to the upstream connector."""
    found = re.search(r'href="(/dex/auth/sso\?[^"]+)"', page.content.decode())
    assert found, page.content
    return found.group(1).replace("&amp;", "&")


@pytest.mark.django_db
def test_a_federated_login_ends_in_a_code_of_our_own(federated: Upstream, browser: Client) -> None:
    verifier, challenge = pkce()
    page = get(browser, "/dex/auth", **auth_params(challenge=challenge))
    assert page.status_code == 200 and b"Log in with Corporate SSO" in page.content
    start = _connector_link(page)
    assert urlsplit(start).path == "/dex/auth/sso"
    to_upstream = location(get(browser, start))
    asked = query_of(to_upstream)
    assert to_upstream.startswith(f"{UPSTREAM}/auth?")
    assert asked["client_id"] == "berth" and asked["redirect_uri"] == f"{ISSUER}/callback"
    assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
    assert asked["scope"] == "openid profile email groups"

    federated.token_response = {
        "access_token": "at",
        "id_token": federated.id_token(
            nonce=asked["nonce"],
            email="ann@example.com",
            email_verified=True,
            preferred_username="ann",
            groups=["devs"],
        ),
    }
    back = location(get(browser, "/dex/callback", code="up-code", state=asked["state"]))
    sent = federated.token_requests[0]
    assert sent["code"] == "up-code" and sent["code_verifier"]
    done = location(get(browser, back))
    assert done.startswith(CLI_REDIRECT)
    status, body = token_request(
        browser,
        grant_type="authorization_code",
        code=query_of(done)["code"],
        redirect_uri=CLI_REDIRECT,
        client_id="cli",
        code_verifier=verifier,
    )
    assert status == 200, body
    claims = verify(browser, body["id_token"])
    assert claims["email"] == "ann@example.com" and claims["groups"] == ["devs"]
    assert claims["sub"] == id_claims.subject("u-1", "sso")

    # The state was single use.
    replay = get(browser, "/dex/callback", code="up-code", state=asked["state"])
    assert replay.status_code == 400


@pytest.mark.django_db
def test_a_callback_with_an_unknown_state_or_an_upstream_error_is_refused(
    federated: Upstream, browser: Client
) -> None:
    _, challenge = pkce()
    assert get(browser, "/dex/callback", code="c", state="forged").status_code == 400
    page = get(browser, "/dex/auth", **auth_params(challenge=challenge))
    start = _connector_link(page)
    state = query_of(location(get(browser, start)))["state"]
    refused = get(browser, "/dex/callback", error="access_denied", state=state)
    assert refused.status_code == 502 and b"access_denied" in refused.content
    assert federated.token_requests == []
