"""Upstream OIDC connector: federation to another issuer, as dex's ``oidc`` connector.

A redirect connector (``base.RedirectConnector``), not a password one. Flow::

    /auth/<id>?req=… ── views: state = a pending entry of the session (single use)
         │ login_url(state): nonce + PKCE verifier kept in the session with the state
         ▼
    upstream authorization endpoint (from its discovery document) ── the user logs in there
         │ 302 to redirectURI (default ``<our issuer>/callback``)
         ▼
    /callback?code&state ── views: state looked up and dropped
         │ handle_callback: code + verifier + client secret → upstream token endpoint
         │ ID token verified here (upstream JWKS; iss, aud, azp, exp, iat, nonce, sub)
         │ optional userinfo (same sub); claims mapped to an Identity (user id = upstream sub)
         ▼
    sessions.login → /auth again: our own code, as after a password login

Refresh: when the upstream gave a refresh token (request ``offline_access`` in ``scopes``),
it is kept in ``Identity.connector_data`` (so in the refresh-token family's identity) and
used on every refresh of ours: a refused refresh ends ours too; a new ID token or userinfo
re-maps the claims (groups may have changed). Without one, the identity is kept until our
own refresh token expires, as dex does.

Configuration (dex's field names)::

    connectors:
    - type: oidc
      id: corp
      name: Corporate SSO
      config:
        issuer: https://sso.example.com/dex
        clientID: berth
        clientSecret: …            # or clientSecretEnv: NAME_OF_ENV_VAR
        redirectURI: https://berth.example.com/dex/callback   # default <issuer>/callback
        scopes: [openid, profile, email, groups]               # the default
        insecureSkipEmailVerified: false
        rootCA: /etc/berth/sso-ca.crt                          # trust for the upstream's TLS
        userNameKey: name                                       # the claim for our "name"
        getUserInfo: false
        claimMapping: {preferred_username: preferred_username, email: email, groups: groups}

The HTTP client is authlib's ``OAuth2Session`` (requests); tokens are verified with joserfc.
Discovery documents and key sets are cached per upstream for a few minutes; an unknown
``kid`` fetches the key set again (the upstream rotated its keys).
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from clusterapi.identity.config import ConnectorConfig, IdentityConfigError
from clusterapi.identity.connectors.base import ConnectorError, Identity

DEFAULT_SCOPES = ("openid", "profile", "email", "groups")
# Asymmetric algorithms only: never ``none``, never HS* keyed with the client secret.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384")
DISCOVERY_PATH = "/.well-known/openid-configuration"
CACHE_SECONDS = 300.0
TIMEOUT_SECONDS = 10
LEEWAY_SECONDS = 30

# Reasons shown to the user (through ``ConnectorError``) when the upstream's answer is refused.
ERR_NO_CODE = "the identity provider sent no authorization code"
ERR_NO_ID_TOKEN = "the identity provider's token response has no id_token"  # noqa: S105
ERR_EMAIL_NOT_VERIFIED = (
    "the identity provider sent no email_verified claim "
    "(insecureSkipEmailVerified trusts its email addresses anyway)"
)
ERR_USERINFO_SUBJECT = "userinfo describes another subject than the ID token"


@dataclass(frozen=True)
class ClaimMapping:
    """Which upstream claims hold the preferred username, the email and the groups."""

    preferred_username: str = "preferred_username"
    email: str = "email"
    groups: str = "groups"


@dataclass(frozen=True)
class OIDCSettings:
    """The parsed ``config:`` of an ``oidc`` connector."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str = ""  # empty: ``<our issuer>/callback``, decided when used
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    insecure_skip_email_verified: bool = False
    root_ca: str = ""
    user_name_key: str = "name"
    get_user_info: bool = False
    claim_mapping: ClaimMapping = field(default_factory=ClaimMapping)


class _Config:
    """Typed reads of a connector's ``config:`` mapping; errors name the document path."""

    def __init__(self, source: str, path: str, data: Mapping[str, Any]) -> None:
        self.source, self.path, self.data = source, path, data

    def fail(self, key: str, reason: str) -> IdentityConfigError:
        return IdentityConfigError(self.source, f"{self.path}.{key}", reason)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key)
        if value is None or value == "":
            if default is None:
                raise self.fail(key, "is required")
            return default
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def url(self, key: str, default: str | None = None) -> str:
        value = self.text(key, default)
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise self.fail(key, f"{value!r} is not an absolute http(s) URL")
        return value

    def child(self, key: str) -> _Config:
        value = self.data.get(key) or {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a mapping")
        return _Config(self.source, f"{self.path}.{key}", value)


def settings_from(source: str, config: ConnectorConfig) -> OIDCSettings:
    """Parse and check the ``config:`` of an ``oidc`` connector."""
    reader = _Config(source, config.path, config.config)
    secret = reader.text("clientSecret", "")
    if env := reader.text("clientSecretEnv", ""):
        if secret:
            raise reader.fail("clientSecretEnv", "give clientSecret or clientSecretEnv, not both")
        secret = os.environ.get(env, "")
        if not secret:
            raise reader.fail("clientSecretEnv", f"environment variable {env} is not set")
    if not secret:
        raise reader.fail("clientSecret", "is required (or clientSecretEnv)")
    scopes = config.config.get("scopes")
    if scopes is None:
        scopes = list(DEFAULT_SCOPES)
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        raise reader.fail("scopes", "must be a list of non-empty strings")
    if "openid" not in scopes:
        raise reader.fail("scopes", "must include openid")
    root_ca = reader.text("rootCA", "")
    if root_ca:
        try:
            ssl.create_default_context(cafile=root_ca)
        except (OSError, ssl.SSLError) as exc:
            raise reader.fail("rootCA", f"cannot load: {exc}") from None
    mapping = reader.child("claimMapping")
    return OIDCSettings(
        issuer=reader.url("issuer").rstrip("/"),
        client_id=reader.text("clientID"),
        client_secret=secret,
        redirect_uri=reader.url("redirectURI", ""),
        scopes=tuple(scopes),
        insecure_skip_email_verified=reader.flag("insecureSkipEmailVerified"),
        root_ca=root_ca,
        user_name_key=reader.text("userNameKey", "name"),
        get_user_info=reader.flag("getUserInfo"),
        claim_mapping=ClaimMapping(
            preferred_username=mapping.text("preferred_username", "preferred_username"),
            email=mapping.text("email", "email"),
            groups=mapping.text("groups", "groups"),
        ),
    )


# --- discovery and keys, cached per upstream ---------------------------------------------------

_cache: dict[tuple[str, str, str], tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def _cached(key: tuple[str, str, str], fresh: bool, fetch: Any) -> Any:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and not fresh and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    value = fetch()  # failures raise and are not cached
    with _cache_lock:
        _cache[key] = (now, value)
    return value


def clear_cache() -> None:
    """Forget every cached discovery document and key set (tests)."""
    with _cache_lock:
        _cache.clear()


class OIDCConnector:
    """Logs users in at an upstream OpenID Connect issuer (authorization code + PKCE)."""

    TYPE = "oidc"

    def __init__(self, config: ConnectorConfig, source: str = "") -> None:
        self.id = config.id
        self.name = config.name
        self.settings = settings_from(source, config)

    @classmethod
    def parse(cls, source: str, config: ConnectorConfig) -> None:
        settings_from(source, config)

    # --- the upstream -----------------------------------------------------------------------

    @property
    def redirect_uri(self) -> str:
        """Where the upstream sends the browser back: our issuer's ``/callback`` by default."""
        if self.settings.redirect_uri:
            return self.settings.redirect_uri
        from clusterapi.identity import config as identity_config

        return identity_config.get().issuer + "/callback"

    def _verify(self) -> str | bool:
        return self.settings.root_ca or True

    def _session(self) -> OAuth2Session:
        session = OAuth2Session(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            scope=" ".join(self.settings.scopes),
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
        )
        return session

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = requests.get(url, verify=self._verify(), timeout=TIMEOUT_SECONDS)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ConnectorError(f"cannot read {url}: {exc}") from exc
        if not isinstance(document, dict):
            raise ConnectorError(f"{url} did not return a JSON object")
        return document

    def discovery(self) -> dict[str, Any]:
        """The upstream's discovery document; its ``issuer`` must be the configured one."""

        def fetch() -> dict[str, Any]:
            document = self._get_json(self.settings.issuer + DISCOVERY_PATH)
            # OIDC Discovery 4.3: a document naming another issuer is not this upstream's.
            if str(document.get("issuer", "")).rstrip("/") != self.settings.issuer:
                raise ConnectorError(
                    f"the discovery document names issuer {document.get('issuer')!r}, "
                    f"not {self.settings.issuer!r}"
                )
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not document.get(key):
                    raise ConnectorError(f"the discovery document has no {key}")
            return document

        key = ("discovery", self.settings.issuer, self.settings.root_ca)
        document: dict[str, Any] = _cached(key, False, fetch)
        return document

    def _keys(self, fresh: bool = False) -> KeySet:
        uri = str(self.discovery()["jwks_uri"])

        def fetch() -> KeySet:
            try:
                return KeySet.import_key_set(self._get_json(uri))  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError) as exc:
                raise ConnectorError(f"cannot use the key set at {uri}: {exc}") from exc

        keyset: KeySet = _cached(("jwks", uri, self.settings.root_ca), fresh, fetch)
        return keyset

    # --- the ID token and the claims ------------------------------------------------------------

    def verify_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        """The claims of an upstream ID token whose signature and claims check out.

        ``nonce`` is required and compared on a login; a refresh's ID token has none.
        """
        algorithms = list(SIGNING_ALGORITHMS)
        try:
            try:
                token = jwt.decode(id_token, self._keys(), algorithms=algorithms)
            except (InvalidKeyIdError, BadSignatureError):
                # Maybe signed with a key the upstream published since the set was cached.
                token = jwt.decode(id_token, self._keys(fresh=True), algorithms=algorithms)
        except (JoseError, ValueError) as exc:
            raise ConnectorError(f"the ID token's signature is not valid: {exc}") from exc
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.settings.issuer},
            "aud": {"essential": True, "value": self.settings.client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        claims: dict[str, Any] = token.claims
        try:
            jwt.JWTClaimsRegistry(leeway=LEEWAY_SECONDS, **options).validate(claims)
        except JoseError as exc:
            raise ConnectorError(f"the ID token was refused: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        # OIDC Core 3.1.3.7 (4, 5): with several audiences azp is required; if present it
        # must be this client.
        if (len(audiences) > 1 and not azp) or (azp and azp != self.settings.client_id):
            raise ConnectorError("the ID token was issued to another client (azp)")
        return claims

    def identity(self, claims: Mapping[str, Any], refresh_token: str = "") -> Identity:
        """Map upstream claims to an Identity: user id = ``sub``, the rest per claimMapping."""
        mapping = self.settings.claim_mapping
        subject = str(claims.get("sub") or "")
        if not subject:
            raise ConnectorError("the identity provider gave no subject (sub)")
        email = _string(claims.get(mapping.email))
        if self.settings.insecure_skip_email_verified:
            email_verified = True
        else:
            verified = claims.get("email_verified")
            if email and not isinstance(verified, bool):
                raise ConnectorError(ERR_EMAIL_NOT_VERIFIED)
            email_verified = bool(verified)
        raw_groups = claims.get(mapping.groups)
        if isinstance(raw_groups, str):
            groups: tuple[str, ...] = (raw_groups,)
        elif isinstance(raw_groups, list):
            groups = tuple(str(g) for g in raw_groups if isinstance(g, str) and g)
        else:
            groups = ()
        username = _string(claims.get(mapping.preferred_username)) or email or subject
        return Identity(
            user_id=subject,
            username=username,
            connector_id=self.id,
            email=email,
            email_verified=email_verified,
            name=_string(claims.get(self.settings.user_name_key)) or username,
            groups=groups,
            connector_data={"refresh_token": refresh_token} if refresh_token else {},
        )

    def _userinfo(self, session: OAuth2Session, claims: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims completed by userinfo (``getUserInfo``), same subject only."""
        endpoint = self.discovery().get("userinfo_endpoint")
        if not self.settings.get_user_info or not endpoint:
            return claims
        try:
            response = session.get(str(endpoint), timeout=TIMEOUT_SECONDS, verify=self._verify())
            response.raise_for_status()
            info = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ConnectorError(f"cannot read userinfo: {exc}") from exc
        if not isinstance(info, dict) or info.get("sub") != claims.get("sub"):
            raise ConnectorError(ERR_USERINFO_SUBJECT)
        # The signed ID token wins where both speak.
        return {**info, **claims}

    # --- the RedirectConnector interface ----------------------------------------------------------

    def login_url(self, state: str) -> tuple[str, dict[str, Any]]:
        nonce = generate_token(32)
        verifier = generate_token(64)
        url, _ = self._session().create_authorization_url(
            str(self.discovery()["authorization_endpoint"]),
            state=state,
            code_verifier=verifier,
            nonce=nonce,
        )
        return url, {"nonce": nonce, "code_verifier": verifier}

    def handle_callback(self, query: Mapping[str, str], kept: Mapping[str, Any]) -> Identity:
        if error := query.get("error"):
            description = query.get("error_description", "")
            raise ConnectorError(f"the identity provider refused: {error} {description}".strip())
        code = query.get("code")
        if not code:
            raise ConnectorError(ERR_NO_CODE)
        session = self._session()
        try:
            token = session.fetch_token(
                str(self.discovery()["token_endpoint"]),
                grant_type="authorization_code",
                code=code,
                code_verifier=str(kept["code_verifier"]),
                timeout=TIMEOUT_SECONDS,
                # Per request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
                verify=self._verify(),
            )
        except (OAuthError, requests.RequestException, ValueError) as exc:
            raise ConnectorError(f"the code exchange failed: {exc}") from exc
        id_token = token.get("id_token")
        if not id_token:
            raise ConnectorError(ERR_NO_ID_TOKEN)
        claims = self.verify_id_token(str(id_token), nonce=str(kept["nonce"]))
        claims = self._userinfo(session, claims)
        return self.identity(claims, str(token.get("refresh_token") or ""))

    def refresh(self, identity: Identity) -> Identity | None:
        upstream_refresh = str(identity.connector_data.get("refresh_token") or "")
        if not upstream_refresh:
            return identity  # nothing to ask: good until our own refresh token expires
        session = self._session()
        try:
            token = session.refresh_token(
                str(self.discovery()["token_endpoint"]),
                refresh_token=upstream_refresh,
                timeout=TIMEOUT_SECONDS,
                # Per request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
                verify=self._verify(),
            )
        except OAuthError as exc:
            if exc.error in ("invalid_grant", "unauthorized_client"):
                return None  # the upstream ended the session: so do we
            raise ConnectorError(f"the identity provider refused the refresh: {exc}") from exc
        except (requests.RequestException, ValueError) as exc:
            raise ConnectorError(f"cannot refresh with the identity provider: {exc}") from exc
        rotated = str(token.get("refresh_token") or upstream_refresh)
        if id_token := token.get("id_token"):
            claims = self.verify_id_token(str(id_token), nonce=None)
        elif self.settings.get_user_info:
            claims = self._userinfo(session, {"sub": identity.user_id})
        else:
            data = {**identity.connector_data, "refresh_token": rotated}
            return Identity.from_dict({**identity.to_dict(), "connector_data": data})
        if claims.get("sub") != identity.user_id:
            return None  # another user behind the same session: never switch identities
        return self.identity(claims, rotated)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
