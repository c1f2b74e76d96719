"""Brute-force protection for password logins.

Failures are counted per connector, username and client IP in Django's cache (Redis in
production, so every API server shares the count). After ``lockout.maxFailures`` failures the
pair is locked for ``lockout.duration``: no password is checked at all while locked, and the
login page says so. A successful login clears the count. Counting per username *and* IP keeps
an attacker from locking a user out from everywhere with a few wrong guesses.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.http import HttpRequest

from clusterapi.identity import config as identity_config

PREFIX = "berth.identity.lockout"


def _key(request: HttpRequest, connector_id: str, username: str) -> str:
    who = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    ip = request.META.get("REMOTE_ADDR", "")
    return f"{PREFIX}:{connector_id}:{who}:{ip}"


def locked_minutes(request: HttpRequest, connector_id: str, username: str) -> int:
    """0 when a login may be tried; otherwise the lockout's length in minutes."""
    settings = identity_config.get().lockout
    failures = cache.get(_key(request, connector_id, username), 0)
    if failures >= settings.max_failures:
        return max(1, int(settings.duration.total_seconds() // 60))
    return 0


def failed(request: HttpRequest, connector_id: str, username: str) -> None:
    settings = identity_config.get().lockout
    key = _key(request, connector_id, username)
    cache.set(key, cache.get(key, 0) + 1, timeout=settings.duration.total_seconds())


def succeeded(request: HttpRequest, connector_id: str, username: str) -> None:
    cache.delete(_key(request, connector_id, username))
