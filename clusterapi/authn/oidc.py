"""OIDC ID tokens as bearer tokens, from any number of configured issuers.

Each issuer is configured like the API server's ``--oidc-*`` flags (structured authentication
configuration): issuer URL, audiences, username claim and prefix, groups claim and prefix,
required claims, and optionally a CA file and a JWKS URL. Keys come from the issuer's JWKS
(found through ``/.well-known/openid-configuration``), cached, and fetched again when a token
names an unknown ``kid`` (at most once every ``REFRESH_SECONDS``), so a rotated issuer key is
picked up without a restart. Only asymmetric algorithms are accepted: ``none`` and HMAC are
refused before any key is looked at, which closes the "HS256 signed with the public key" hole.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from clusterapi.authn import AuthenticationError, User

REFRESH_SECONDS = 10.0
ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted issuer (the keys mirror Kubernetes' JWT authenticator configuration)."""

    url: str
    audiences: tuple[str, ...]
    username_claim: str = "sub"
    # None: upstream's default (issuer URL + "#" unless the claim is "email"); "": no prefix.
    username_prefix: str | None = None
    groups_claim: str = ""
    groups_prefix: str = ""
    required_claims: dict[str, str] = field(default_factory=dict)
    ca_file: str = ""
    jwks_url: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IssuerConfig:
        audiences = data.get("audiences") or ([data["audience"]] if data.get("audience") else [])
        prefix = data.get("usernamePrefix")
        return cls(
            url=str(data["issuer"]).rstrip("/"),
            audiences=tuple(str(a) for a in audiences),
            username_claim=str(data.get("usernameClaim", "sub")),
            username_prefix=None if prefix is None else ("" if prefix == "-" else str(prefix)),
            groups_claim=str(data.get("groupsClaim", "")),
            groups_prefix=str(data.get("groupsPrefix", "")),
            required_claims={str(k): str(v) for k, v in (data.get("requiredClaims") or {}).items()},
            ca_file=str(data.get("certificateAuthority", "")),
            jwks_url=str(data.get("jwksURL", "")),
            algorithms=tuple(data.get("signingAlgorithms") or ("RS256", "ES256")),
        )


class Issuer:
    """A trusted issuer and its cached signing keys."""

    def __init__(self, config: IssuerConfig) -> None:
        self.config = config
        self._keys: dict[str, Any] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        return httpx.Client(verify=self.config.ca_file or True, timeout=5.0)

    def _fetch(self) -> None:
        with self._client() as client:
            jwks_url = self.config.jwks_url
            if not jwks_url:
                discovery = client.get(self.config.url + "/.well-known/openid-configuration")
                discovery.raise_for_status()
                jwks_url = str(discovery.json()["jwks_uri"])
            response = client.get(jwks_url)
            response.raise_for_status()
            keys: dict[str, Any] = {}
            for entry in response.json().get("keys", []):
                try:
                    jwk = jwt.PyJWK(entry)
                except jwt.PyJWTError:
                    continue  # keys of types we do not verify with
                keys[str(entry.get("kid", ""))] = jwk.key
        self._keys = keys
        self._fetched = time.monotonic()

    def key(self, kid: str) -> Any:
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched > REFRESH_SECONDS:
                try:
                    self._fetch()
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    raise AuthenticationError(
                        f"cannot fetch keys of {self.config.url}: {exc}"
                    ) from exc
            if kid in self._keys:
                return self._keys[kid]
            if not kid and len(self._keys) == 1:
                return next(iter(self._keys.values()))
        raise AuthenticationError("unknown signing key")

    def authenticate(self, token: str) -> User:
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in ASYMMETRIC or alg not in config.algorithms:
            raise AuthenticationError(f"signing algorithm {alg!r} is not accepted")
        key = self.key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(config.audiences),
                issuer=config.url,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(str(exc)) from exc
        for claim, wanted in config.required_claims.items():
            if str(claims.get(claim)) != wanted:
                raise AuthenticationError(f"required claim {claim} does not match")
        username = claims.get(config.username_claim)
        if not isinstance(username, str) or not username:
            raise AuthenticationError(f"claim {config.username_claim!r} is missing")
        if config.username_claim == "email" and claims.get("email_verified") is False:
            raise AuthenticationError("email not verified")
        prefix = config.username_prefix
        if prefix is None:
            prefix = "" if config.username_claim == "email" else config.url + "#"
        groups: list[str] = []
        if config.groups_claim:
            raw = claims.get(config.groups_claim, [])
            values = [raw] if isinstance(raw, str) else list(raw or [])
            groups = [config.groups_prefix + str(g) for g in values]
        return User(
            name=prefix + username,
            uid=str(claims.get("sub", "")),
            groups=tuple(groups),
        ).with_authenticated()


_issuers: dict[str, Issuer] = {}
_issuers_lock = threading.Lock()


def configure(configs: list[IssuerConfig]) -> None:
    """Replace the trusted issuers (settings at start-up; tests)."""
    with _issuers_lock:
        _issuers.clear()
        for config in configs:
            _issuers[config.url] = Issuer(config)


def issuer_for(iss: str | None) -> Issuer | None:
    if not iss:
        return None
    if not _issuers:
        from clusterapi import config

        configure(config.oidc_authenticators())
        from clusterapi.identity.trust import builtin_issuer

        builtin = builtin_issuer()  # the built-in issuer, unless a config entry names its URL
        if builtin is not None:
            with _issuers_lock:
                _issuers.setdefault(builtin.config.url, builtin)
    with _issuers_lock:
        return _issuers.get(iss.rstrip("/"))
