"""ASGI entry point: uvicorn serves this (``manage.py up``).

Two Django handlers share the process. The browser parts (dashboard, admin site, static files)
get the full middleware chain (sessions, authentication, CSRF, messages). The Kubernetes API
gets none: it authenticates bearer tokens itself, and under ASGI every synchronous middleware
costs a thread hand-off per request — measured at over half of a GET's server time.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterapi.settings")

browser_application = get_asgi_application()

# Paths that need sessions (the dashboard's login, the admin site) go through the full chain.
BROWSER_PREFIXES = ("/ui", "/admin", "/static", "/oidc", "/dex", "/accounts")


class APIHandler(ASGIHandler):
    """The same Django, without middleware (see the module docstring)."""

    def load_middleware(self, is_async: bool = False) -> None:
        configured = settings.MIDDLEWARE
        settings.MIDDLEWARE = []
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = configured


api_application = APIHandler()

# exec, attach and port-forward are WebSockets (``clusterapi.api.streams``).
from clusterapi.api import streams  # noqa: E402 - after Django is set up

streams.accept_slash_in_subprotocols()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and not str(scope.get("path", "")).startswith(BROWSER_PREFIXES):
        await api_application(scope, receive, send)
    elif scope["type"] == "websocket" and str(scope.get("path", "")).startswith("/api/"):
        await streams.application(scope, receive, send)
    else:
        await browser_application(scope, receive, send)
