"""The issuer's browser session: who is logged in at the issuer, and what they were doing.

It lives in the Django session (the cookie the dashboard uses too) under keys of its own, so
ending the issuer session (``logout``) leaves other session data alone. A login cycles the
session key (session fixation). A login is good for ``expiry.idTokens``; after that the
user logs in again. Pending requests (an authorization request or a device approval waiting
for the login to finish) are kept by a random id for ``expiry.authRequests``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.http import HttpRequest

from clusterapi.identity import config as identity_config
from clusterapi.identity.connectors.base import Identity

IDENTITY_KEY = "berth.identity"
PENDING_KEY = "berth.identity.pending"
MAX_PENDING = 20


def login(request: HttpRequest, identity: Identity) -> None:
    request.session.cycle_key()
    request.session[IDENTITY_KEY] = {"identity": identity.to_dict(), "auth_time": int(time.time())}


def current(request: HttpRequest) -> tuple[Identity, int] | None:
    """The logged-in identity and when it logged in, while the login is still good."""
    data = request.session.get(IDENTITY_KEY)
    if not data:
        return None
    lifetime = identity_config.get().expiry.id_tokens.total_seconds()
    if data["auth_time"] + lifetime <= time.time():
        request.session.pop(IDENTITY_KEY, None)
        return None
    return Identity.from_dict(data["identity"]), int(data["auth_time"])


def logout(request: HttpRequest) -> None:
    """End the issuer session (other session data stays)."""
    request.session.pop(IDENTITY_KEY, None)
    request.session.pop(PENDING_KEY, None)
    request.session.cycle_key()


def remember(request: HttpRequest, kind: str, data: str) -> str:
    """Keep a request that waits for a login; its id for the login page's ``req``."""
    now = time.time()
    lifetime = identity_config.get().expiry.auth_requests.total_seconds()
    pending: dict[str, Any] = {
        key: value
        for key, value in request.session.get(PENDING_KEY, {}).items()
        if value["expires"] > now
    }
    while len(pending) >= MAX_PENDING:
        pending.pop(min(pending, key=lambda k: pending[k]["expires"]))
    request_id = secrets.token_urlsafe(16)
    pending[request_id] = {"kind": kind, "data": data, "expires": now + lifetime}
    request.session[PENDING_KEY] = pending
    return request_id


def pending(request: HttpRequest, request_id: str) -> dict[str, Any] | None:
    entry: dict[str, Any] | None = request.session.get(PENDING_KEY, {}).get(request_id)
    if entry is None or entry["expires"] <= time.time():
        return None
    return entry


def forget(request: HttpRequest, request_id: str) -> None:
    entries = dict(request.session.get(PENDING_KEY, {}))
    entries.pop(request_id, None)
    request.session[PENDING_KEY] = entries
