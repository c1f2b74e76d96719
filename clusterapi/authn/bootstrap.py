"""Bootstrap tokens (``<id>.<secret>``) for joining node agents, as kubeadm's.

A token is a Secret ``bootstrap-token-<id>`` of type ``bootstrap.kubernetes.io/token`` in
``kube-system`` (so it is listed, inspected and revoked like any object, through the store);
it authenticates as ``system:bootstrap:<id>`` in group ``system:bootstrappers`` (plus the
token's ``auth-extra-groups``) until its ``expiration``.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clusterapi import store
from clusterapi.authn import User
from clusterapi.core.errors import ApiError
from clusterapi.resources import by_kind

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"  # noqa: S105 - a Secret type, not a secret
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
DEFAULT_GROUP = "system:bootstrappers:berth:default-node-token"
_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class BootstrapToken:
    """A bootstrap token as listed (the secret part is never shown again)."""

    id: str
    description: str
    expiration: datetime | None
    groups: tuple[str, ...]

    @property
    def expired(self) -> bool:
        return self.expiration is not None and self.expiration <= datetime.now(UTC)


def _secrets_kind() -> store.objects.Kind:
    kind = by_kind("v1", "Secret")
    assert kind is not None
    return kind


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _text(data: dict[str, str], key: str) -> str:
    try:
        return base64.b64decode(data.get(key, "")).decode()
    except ValueError:
        return ""


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)  # unparseable: treat as expired


def create(ttl: timedelta | None = timedelta(hours=24), description: str = "") -> str:
    """Create a bootstrap token; returns ``<id>.<secret>`` (shown once)."""
    token_id = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    data = {
        "token-id": _b64(token_id),
        "token-secret": _b64(secret),
        "usage-bootstrap-authentication": _b64("true"),
        "usage-bootstrap-signing": _b64("true"),
        "auth-extra-groups": _b64(DEFAULT_GROUP),
    }
    if description:
        data["description"] = _b64(description)
    if ttl is not None:
        expires = (datetime.now(UTC) + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
        data["expiration"] = _b64(expires)
    store.create(
        _secrets_kind(),
        {"metadata": {"name": f"bootstrap-token-{token_id}"}, "type": SECRET_TYPE, "data": data},
        namespace=NAMESPACE,
        field_manager="berth-token",
    )
    return f"{token_id}.{secret}"


def _from_secret(obj: store.objects.Obj) -> BootstrapToken | None:
    if obj.get("type") != SECRET_TYPE:
        return None
    data = obj.get("data") or {}
    groups = tuple(g for g in _text(data, "auth-extra-groups").split(",") if g)
    return BootstrapToken(
        id=_text(data, "token-id"),
        description=_text(data, "description"),
        expiration=_parse_time(_text(data, "expiration")),
        groups=groups,
    )


def list_tokens() -> list[BootstrapToken]:
    out = []
    for obj in store.list_objects(_secrets_kind(), NAMESPACE).objects():
        token = _from_secret(obj)
        if token is not None:
            out.append(token)
    return out


def delete(token_id: str) -> bool:
    try:
        store.delete(_secrets_kind(), NAMESPACE, f"bootstrap-token-{token_id}")
    except ApiError as exc:
        if exc.reason == "NotFound":
            return False
        raise
    return True


def authenticate(token: str) -> User | None:
    """The bootstrap identity of a valid, unexpired token; None otherwise."""
    match = TOKEN_RE.match(token)
    if not match:
        return None
    token_id, secret = match.groups()
    try:
        obj = store.get(_secrets_kind(), NAMESPACE, f"bootstrap-token-{token_id}")
    except ApiError:
        return None
    data = obj.get("data") or {}
    if obj.get("type") != SECRET_TYPE or obj["metadata"].get("deletionTimestamp"):
        return None
    if not hmac.compare_digest(_text(data, "token-secret"), secret):
        return None
    if _text(data, "usage-bootstrap-authentication") != "true":
        return None
    parsed = _from_secret(obj)
    if parsed is None or parsed.expired:
        return None
    groups = ("system:bootstrappers", *parsed.groups)
    return User(name=f"system:bootstrap:{token_id}", groups=groups).with_authenticated()
