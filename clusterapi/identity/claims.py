"""ID-token and userinfo claims made from a connector's ``Identity``.

``sub`` is opaque and encodes the user id and the connector id exactly as dex does (the
protobuf message ``IDTokenSubject{user_id = 1; conn_id = 2}``, base64url without padding), so
subjects stay stable across connectors with overlapping user ids and match what dex would
issue for the same user.
"""

from __future__ import annotations

import base64
from typing import Any

from clusterapi.identity.connectors.base import Identity


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: str) -> bytes:
    data = value.encode()
    if not data:
        return b""  # proto3 leaves empty strings out
    return bytes([(number << 3) | 2]) + _varint(len(data)) + data


def subject(user_id: str, connector_id: str) -> str:
    """The ``sub`` claim for a user of a connector."""
    raw = _field(1, user_id) + _field(2, connector_id)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def user_claims(identity: Identity, scope: str) -> dict[str, Any]:
    """The claims about the user that the granted scopes allow (ID token and userinfo)."""
    scopes = set((scope or "").split())
    claims: dict[str, Any] = {"sub": subject(identity.user_id, identity.connector_id)}
    if "email" in scopes and identity.email:
        claims["email"] = identity.email
        claims["email_verified"] = identity.email_verified
    if "profile" in scopes:
        claims["name"] = identity.name or identity.username
        claims["preferred_username"] = identity.username
    if "groups" in scopes:
        claims["groups"] = list(identity.groups)
    return claims
