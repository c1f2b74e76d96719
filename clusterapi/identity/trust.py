"""The API trusts the built-in issuer's ID tokens, reading its keys in-process.

The issuer is one more ``clusterapi.authn.oidc`` issuer: audiences are the static clients
(kubectl and the dashboard), the groups claim is ``groups``, and the username claim and the
prefixes come from ``identity.api``. Its JWKS is read from the database instead of over HTTP,
with the same unknown-``kid`` refresh rule as external issuers, so a rotated key is picked up
at once.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from clusterapi.authn.oidc import Issuer, IssuerConfig
from clusterapi.identity import config as identity_config
from clusterapi.identity import keys


class BuiltinIssuer(Issuer):
    """An ``oidc.Issuer`` whose keys come from ``identity.keys``."""

    def _fetch(self) -> None:
        found: dict[str, Any] = {}
        # Read only: verifying a token never rotates keys (that is the signer's job).
        for row in keys.published():
            found[row.kid] = jwt.PyJWK(row.public_jwk).key
        self._keys = found
        self._fetched = time.monotonic()

    def key(self, kid: str) -> Any:
        # A database read, not an HTTP fetch: a key made by a rotation a moment ago is found
        # at once rather than after REFRESH_SECONDS.
        if kid not in self._keys:
            with self._lock:
                self._fetch()
        return super().key(kid)


def builtin_issuer() -> Issuer | None:
    """The built-in issuer as a trusted issuer, unless ``identity.api.enabled`` is false."""
    config = identity_config.get()
    if not config.api.enabled:
        return None
    return BuiltinIssuer(
        IssuerConfig(
            url=config.issuer,
            audiences=tuple(client.id for client in config.static_clients),
            username_claim=config.api.username_claim,
            username_prefix=config.api.username_prefix,
            groups_claim="groups",
            groups_prefix=config.api.groups_prefix,
            algorithms=(keys.ALGORITHM,),
        )
    )
