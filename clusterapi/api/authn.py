"""Bearer-token authentication of API requests.

Tokens are random secrets handed out by ``manage.py kubeconfig`` (and the bootstrap admin
token written at first start); only their SHA-256 digest is stored. A small in-process cache
keeps hot paths from hitting the database on every request; revocation therefore takes effect
within ``CACHE_SECONDS``. The full authenticator chain (token files, bootstrap and
service-account tokens, OIDC) arrives with the authentication issue and plugs in here.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from clusterapi.core.models import ApiToken

CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class User:
    """An authenticated identity, as Kubernetes' user.Info."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)


_cache: dict[str, tuple[float, User | None]] = {}
_cache_lock = threading.Lock()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    username: str,
    groups: list[str] | tuple[str, ...] = (),
    *,
    description: str = "",
    ttl: timedelta | None = None,
) -> str:
    """Issue a new bearer token for ``username``; returns the secret (shown once)."""
    token = "berth-" + secrets.token_urlsafe(32)
    expires: datetime | None = timezone.now() + ttl if ttl else None
    ApiToken.objects.create(
        digest=_digest(token),
        username=username,
        uid=hashlib.sha256(username.encode()).hexdigest()[:16],
        groups=list(groups),
        description=description,
        expires=expires,
    )
    return token


def authenticate_token(token: str) -> User | None:
    """The user a bearer token belongs to, or None when it is unknown or expired."""
    digest = _digest(token)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(digest)
        if hit and hit[0] > now:
            return hit[1]
    row = ApiToken.objects.filter(digest=digest).first()
    user: User | None = None
    if row is not None and (row.expires is None or row.expires > timezone.now()):
        groups = tuple(dict.fromkeys([*row.groups, "system:authenticated"]))
        user = User(name=row.username, uid=row.uid, groups=groups)
    with _cache_lock:
        if len(_cache) > 10000:
            _cache.clear()
        _cache[digest] = (now + CACHE_SECONDS, user)
    return user


def bearer_token(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
