"""The dashboard's relying-party checks that mozilla-django-oidc leaves to us.

ID tokens are signed here with a throwaway RSA key; the provider is the built-in issuer's
configuration (no server is needed for these checks).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.test import Client

from clusterapi.authn.chain import SESSION_IDENTITY_KEY
from dashboard.oidc import OIDCBackend, provider, rbac_identity

pytestmark = pytest.mark.django_db  # sessions live in the database

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def id_token(algorithm: str = "RS256", **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": provider().issuer,
        "aud": "berth-dashboard",
        "azp": "berth-dashboard",
        "sub": "subject-1",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    key: Any = KEY if algorithm == "RS256" else "berth-dashboard-secret-used-as-hmac-key"
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})


def test_a_token_for_this_client_from_this_issuer_is_accepted() -> None:
    claims = OIDCBackend()._verify_jws(id_token(), KEY.public_key())
    assert claims["sub"] == "subject-1"


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "kubectl"},
        {"aud": ["berth-dashboard", "kubectl"], "azp": None},
        {"azp": "kubectl"},
        {"iss": "https://evil.example.com/dex"},
        {"exp": int(time.time()) - 3600},
        {"exp": None},
        {"iat": None},
        {"sub": None},
    ],
    ids=[
        "wrong-aud",
        "several-aud-no-azp",
        "wrong-azp",
        "wrong-iss",
        "expired",
        "no-exp",
        "no-iat",
        "no-sub",
    ],
)
def test_a_token_with_wrong_claims_is_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(SuspiciousOperation):
        OIDCBackend()._verify_jws(id_token(**changes), KEY.public_key())


def test_only_rs256_is_accepted() -> None:
    with pytest.raises(SuspiciousOperation):
        OIDCBackend()._verify_jws(id_token("HS256"), KEY.public_key())


def test_claims_map_to_the_identity_the_api_would_see() -> None:
    identity = rbac_identity(
        {"sub": "s", "email": "a@example.com", "email_verified": True, "groups": ["ops"]},
        provider(),
    )
    assert identity == {"name": "a@example.com", "uid": "s", "groups": ["oidc:ops"]}


def test_the_login_request_carries_state_nonce_and_pkce(client: Client) -> None:
    response = client.get("/oidc/authenticate/?next=/ui/", secure=True)
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert target.path.endswith("/dex/auth")
    assert query["client_id"] == "berth-dashboard"
    assert query["redirect_uri"] == "https://testserver/oidc/callback/"
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["state"] and query["nonce"]
    assert "groups" in query["scope"].split()


def test_a_callback_with_a_state_that_is_not_ours_is_rejected(client: Client) -> None:
    client.get("/oidc/authenticate/?next=/ui/", secure=True)
    response = client.get("/oidc/callback/?code=abc&state=forged", secure=True)
    assert response.status_code == 400
    assert b"not valid" in response.content


def test_the_session_identity_replaces_the_django_users_own_groups(client: Client) -> None:
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    session = client.session
    session[SESSION_IDENTITY_KEY] = {"name": "root@example.com", "uid": "s", "groups": []}
    session.save()
    # An OIDC login named like a superuser is not a superuser for RBAC.
    response = client.get("/ui/", secure=True)
    assert response.status_code == 403
