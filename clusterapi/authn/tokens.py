"""Bearer tokens Berth issues itself (``manage.py kubeconfig``, the bootstrap admin).

Only a SHA-256 digest is stored. Hot tokens are cached in-process for ``CACHE_SECONDS`` so a
GET does not pay a database round trip for authentication; ``revoke`` clears the cache entry in
this process, and other processes see a revocation within that window.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import timedelta

from django.utils import timezone

from clusterapi.authn import User
from clusterapi.core.models import ApiToken

CACHE_SECONDS = 10.0
PREFIX = "berth-"

_cache: dict[str, tuple[float, User | None]] = {}
_lock = threading.Lock()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    username: str,
    groups: list[str] | tuple[str, ...] = (),
    *,
    description: str = "",
    ttl: timedelta | None = None,
) -> str:
    """Issue a new token for ``username``; returns the secret (shown once, never stored)."""
    token = PREFIX + secrets.token_urlsafe(32)
    ApiToken.objects.create(
        digest=digest(token),
        username=username,
        uid=hashlib.sha256(username.encode()).hexdigest()[:16],
        groups=list(groups),
        description=description,
        expires=timezone.now() + ttl if ttl else None,
    )
    return token


def revoke(token: str) -> bool:
    key = digest(token)
    with _lock:
        _cache.pop(key, None)
    return bool(ApiToken.objects.filter(digest=key).delete()[0])


def authenticate(token: str) -> User | None:
    """The user of an issued token, or None when it is unknown or expired."""
    key = digest(token)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
    row = ApiToken.objects.filter(digest=key).first()
    user: User | None = None
    if row is not None and (row.expires is None or row.expires > timezone.now()):
        user = User(name=row.username, uid=row.uid, groups=tuple(row.groups)).with_authenticated()
    with _lock:
        if len(_cache) > 10000:
            _cache.clear()
        # Expiring tokens are not cached past their expiry.
        ttl = CACHE_SECONDS
        if row is not None and row.expires is not None:
            ttl = min(ttl, max((row.expires - timezone.now()).total_seconds(), 0.0))
        _cache[key] = (now + ttl, user)
    return user
