"""The dashboard as an OpenID Connect relying party (mozilla-django-oidc).

Flow of a login::

    /ui/ (no session) ──► /oidc/authenticate/?next=/ui/  state + nonce + PKCE (S256) in the session
         ──► issuer /auth ── the user logs in at the issuer (any connector)
         ──► /oidc/callback/?code&state  state checked and dropped (single use)
         ──► back channel: token endpoint (code + verifier + client secret), JWKS, userinfo,
             over TLS trusting the CA bundle (the server's own CA for the built-in issuer)
         ──► ``OIDCBackend``: ID token verified here (RS256 only, ``iss``, ``aud``, ``azp``,
             ``exp``/``iat``; nonce by the library), user found or created by username
         ──► the session holds the RBAC identity the API would give the same ID token:
             username claim + prefix, groups claim + prefix (``oidc:``) — ``session_user``
             in ``clusterapi.authn.chain`` uses it, so the dashboard and the API agree.

Which issuer: the built-in one (``<server>/dex``, client ``berth-dashboard`` whose secret
``clusterapi.identity.config`` keeps in the data directory), unless ``BERTH_OIDC_ISSUER``
names an external one (its discovery document is fetched once, and its ``issuer`` must equal
the configured URL). ``BERTH_OIDC_CLIENT_ID``, ``BERTH_OIDC_CLIENT_SECRET``,
``BERTH_OIDC_CA_FILE``, ``BERTH_OIDC_DISCOVERY_URL`` and the claim mapping
(``BERTH_OIDC_USERNAME_CLAIM``/``_PREFIX``, ``BERTH_OIDC_GROUPS_CLAIM``/``_PREFIX``) override
the defaults; see ``clusterapi/settings.py``.

mozilla-django-oidc reads the provider's endpoints as static settings; here they come from
``provider()`` through ``oidc_setting``, which the backend and the views use as their
``get_settings``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from clusterapi.authn.chain import SESSION_IDENTITY_KEY

logger = logging.getLogger(__name__)

# The only signature algorithm accepted, whatever OIDC_RP_SIGN_ALGO says (no HS256 with the
# client secret, no ``none``).
ALGORITHM = "RS256"
# Seconds of clock skew allowed on ``exp``/``iat``.
LEEWAY_SECONDS = 30
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class Provider:
    """The issuer the dashboard logs in with, and how its claims map to an RBAC user."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    end_session_endpoint: str
    client_id: str
    client_secret: str
    verify: str | bool  # a CA bundle path, or True for the system's trust store
    username_claim: str = "email"
    username_prefix: str = ""
    groups_claim: str = "groups"
    groups_prefix: str = "oidc:"

    def setting(self, name: str) -> Any:
        """The value of a mozilla-django-oidc setting this provider decides, else None."""
        return {
            "OIDC_OP_AUTHORIZATION_ENDPOINT": self.authorization_endpoint,
            "OIDC_OP_TOKEN_ENDPOINT": self.token_endpoint,
            "OIDC_OP_USER_ENDPOINT": self.userinfo_endpoint,
            "OIDC_OP_JWKS_ENDPOINT": self.jwks_uri,
            "OIDC_RP_CLIENT_ID": self.client_id,
            "OIDC_RP_CLIENT_SECRET": self.client_secret,
            "OIDC_VERIFY_SSL": self.verify,
            "OIDC_RP_SIGN_ALGO": ALGORITHM,
        }.get(name)


def _verify() -> str | bool:
    """The CA bundle for back-channel calls: configured, else this server's own CA."""
    configured: str = settings.BERTH_OIDC_CA_FILE
    if configured:
        return configured
    own_ca = Path(settings.DATA_DIR) / "pki" / "ca.crt"
    return str(own_ca) if own_ca.exists() else True


def _builtin() -> Provider:
    from clusterapi.identity import config as identity_config

    config = identity_config.get()
    client_id: str = settings.OIDC_RP_CLIENT_ID
    secret: str = settings.BERTH_OIDC_CLIENT_SECRET
    if not secret:
        client = next((c for c in config.static_clients if c.id == client_id), None)
        if client is None:
            raise ImproperlyConfigured(f"the built-in issuer has no client {client_id!r}")
        secret = client.secret
    issuer = config.issuer
    return Provider(
        issuer=issuer,
        authorization_endpoint=f"{issuer}/auth",
        token_endpoint=f"{issuer}/token",
        userinfo_endpoint=f"{issuer}/userinfo",
        jwks_uri=f"{issuer}/keys",
        end_session_endpoint=f"{issuer}/logout",
        client_id=client_id,
        client_secret=secret,
        verify=_verify(),
        # The API's mapping of this issuer's tokens (``clusterapi.identity.trust``).
        username_claim=config.api.username_claim,
        username_prefix=config.api.username_prefix,
        groups_claim="groups",
        groups_prefix=config.api.groups_prefix,
    )


@functools.lru_cache(maxsize=4)
def _discover(issuer: str, url: str, verify: str | bool) -> dict[str, Any]:
    """An external issuer's discovery document (failures are not cached)."""
    response = requests.get(url, verify=verify, timeout=settings.OIDC_TIMEOUT)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    # OIDC Discovery 4.3 / ASVS 10.5.3: the document must be the configured issuer's.
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ImproperlyConfigured(
            f"{url} names issuer {document.get('issuer')!r}, not the configured {issuer!r}"
        )
    return document


def _external(issuer: str) -> Provider:
    verify = _verify()
    url = settings.BERTH_OIDC_DISCOVERY_URL or issuer + DISCOVERY_PATH
    document = _discover(issuer, url, verify)
    return Provider(
        issuer=issuer,
        authorization_endpoint=str(document["authorization_endpoint"]),
        token_endpoint=str(document["token_endpoint"]),
        userinfo_endpoint=str(document.get("userinfo_endpoint", "")),
        jwks_uri=str(document["jwks_uri"]),
        end_session_endpoint=str(document.get("end_session_endpoint", "")),
        client_id=settings.OIDC_RP_CLIENT_ID,
        client_secret=settings.BERTH_OIDC_CLIENT_SECRET,
        verify=verify,
        username_claim=settings.BERTH_OIDC_USERNAME_CLAIM,
        username_prefix=settings.BERTH_OIDC_USERNAME_PREFIX,
        groups_claim=settings.BERTH_OIDC_GROUPS_CLAIM,
        groups_prefix=settings.BERTH_OIDC_GROUPS_PREFIX,
    )


def provider() -> Provider:
    """The configured issuer: ``BERTH_OIDC_ISSUER``, else the built-in one."""
    external: str = settings.BERTH_OIDC_ISSUER
    return _external(external.rstrip("/")) if external else _builtin()


def oidc_setting(attr: str, *default: Any) -> Any:
    """``get_settings`` of the backend and views: provider values first, then settings."""
    if attr.startswith(("OIDC_OP_", "OIDC_RP_CLIENT_", "OIDC_VERIFY_SSL", "OIDC_RP_SIGN_ALGO")):
        value = provider().setting(attr)
        if value is not None and value != "":
            return value
    return import_from_settings(attr, *default)


def rbac_identity(claims: dict[str, Any], where: Provider) -> dict[str, Any]:
    """The user and groups the API would see for these claims (``clusterapi.authn.oidc``)."""
    name = claims.get(where.username_claim)
    if not isinstance(name, str) or not name:
        raise SuspiciousOperation(f"the ID token has no {where.username_claim!r} claim")
    if where.username_claim == "email" and claims.get("email_verified") is False:
        raise SuspiciousOperation("the email address is not verified")
    raw = claims.get(where.groups_claim) or []
    groups = [raw] if isinstance(raw, str) else [str(g) for g in raw]
    return {
        "name": where.username_prefix + name,
        "uid": str(claims.get("sub", "")),
        "groups": [where.groups_prefix + g for g in groups],
    }


def logout_url(request: HttpRequest) -> str:
    """``OIDC_OP_LOGOUT_URL_METHOD``: the issuer's end_session URL (RP-initiated logout)."""
    where = provider()
    back = request.build_absolute_uri(settings.LOGOUT_REDIRECT_URL)
    if not where.end_session_endpoint:
        return back
    params = {"client_id": where.client_id, "post_logout_redirect_uri": back}
    if id_token := request.session.get("oidc_id_token"):
        params["id_token_hint"] = id_token
    return f"{where.end_session_endpoint}?{urlencode(params)}"


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, with the ID-token checks the library leaves out.

    The library checks the signature with the header's ``alg`` and the nonce; it checks
    neither ``iss`` nor ``aud`` (nor ``azp``), and matches users by email. Here the token must
    be RS256, from the configured issuer, for this client, with ``exp``, ``iat`` and ``sub``;
    userinfo must describe the same ``sub``; and the Django user is found by username
    (``preferred_username``, else email). RBAC never trusts that Django user's own flags: the
    session carries the identity made from the verified claims.
    """

    get_settings = staticmethod(oidc_setting)

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        where = provider()
        try:
            header = jwt.get_unverified_header(payload)
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"malformed ID token: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise SuspiciousOperation(f"ID token algorithm {header.get('alg')!r} refused")
        try:
            claims: dict[str, Any] = jwt.decode(
                payload,
                key,
                algorithms=[ALGORITHM],
                audience=where.client_id,
                issuer=where.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"ID token rejected: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        # OIDC Core 3.1.3.7 (4, 5): with several audiences azp is required; if present it
        # must be this client.
        if (len(audiences) > 1 and not azp) or (azp and azp != where.client_id):
            raise SuspiciousOperation("ID token azp is not this client")
        return claims

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        claims: dict[str, Any] = super().verify_token(token, **kwargs)
        self._id_claims = claims
        return claims

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            info = super().get_userinfo(access_token, id_token, payload)
            if info.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("userinfo describes another subject")
            # The signed ID token wins where both speak.
            claims = {**info, **payload}
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub")) and bool(self.get_username(claims))

    def get_username(self, claims: dict[str, Any]) -> str:
        username = claims.get("preferred_username") or claims.get("email") or ""
        return str(username)[:150]

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(username=self.get_username(claims))

    def describe_user_by_claims(self, claims: dict[str, Any]) -> str:
        return f"username {self.get_username(claims)}"

    def create_user(self, claims: dict[str, Any]) -> Any:
        user = self.UserModel.objects.create_user(
            self.get_username(claims), email=claims.get("email") or ""
        )
        user.set_unusable_password()  # the issuer checks passwords, never this database
        user.save(update_fields=["password"])
        return self._remember(user, claims)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        email = claims.get("email") or ""
        if email and user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        return self._remember(user, claims)

    def _remember(self, user: AbstractBaseUser, claims: dict[str, Any]) -> AbstractBaseUser:
        # The callback view moves this into the session once Django has logged the user in
        # (login() may flush the session, so it cannot be written before).
        user.berth_oidc_identity = rbac_identity(claims, provider())  # type: ignore[attr-defined]
        return user


def remember_identity(request: HttpRequest, user: Any) -> None:
    """Keep the verified RBAC identity of a fresh login in the session."""
    identity = getattr(user, "berth_oidc_identity", None)
    if identity is not None:
        request.session[SESSION_IDENTITY_KEY] = identity
