"""ASGI entry point: uvicorn serves this (``manage.py up``).

Two Django handlers share the process. The browser parts (dashboard, admin site, static files)
get the full middleware chain (sessions, authentication, CSRF, messages). The Kubernetes API
gets none: it authenticates bearer tokens itself, and under ASGI every synchronous middleware
costs a thread hand-off per request — measured at over half of a GET's server time.

The API's handler also leaves out Django's per-request thread. Django runs each request in a
``ThreadSensitiveContext`` and fires the request signals through thread-sensitive
``sync_to_async`` calls, so every request started a thread, handed work to it twice and joined
it at the end. The API's views are async and run their blocking work on a shared pool
(``api.views.in_thread``), which opens and closes its own database connections; the signals'
receivers only look after the connections of the thread they run in, and the event loop's
thread holds none, so ``APIHandler.handle`` fires them inline. That took a GET from 1.3 to
0.7 ms of server CPU and a create from 3.1 to 2.3 ms (``docs/benchmarks.md``). The reference
view of the benchmark (``/_bench/``) is served by Django's own handler, without middleware, so
it stays the yardstick of plain Django.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.asgi import get_asgi_application
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpRequest
from django.urls import set_script_prefix

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterapi.settings")

browser_application = get_asgi_application()

from clusterapi.identity.config import url_prefix as issuer_url_prefix  # noqa: E402 - after setup

# Paths that need sessions (the dashboard's login, the admin site, the issuer's login pages,
# wherever BERTH_ISSUER_URL puts them) go through the full chain.
BROWSER_PREFIXES = tuple(
    dict.fromkeys(
        ("/ui", "/admin", "/static", "/oidc", "/dex", "/accounts", "/" + issuer_url_prefix())
    )
)


class WithoutMiddleware(ASGIHandler):
    """Django's ASGI handler without middleware (see the module docstring)."""

    def load_middleware(self, is_async: bool = False) -> None:
        configured = settings.MIDDLEWARE
        settings.MIDDLEWARE = []
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = configured


class APIHandler(WithoutMiddleware):
    """The API's handler: no middleware, no thread of its own per request (module docstring).

    Every view it serves is async; blocking work goes to ``api.views``' pool.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # No ThreadSensitiveContext: nothing here runs thread-sensitive code.
        await self.handle(scope, receive, send)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            signals.request_started.send(sender=type(self), scope=scope)
            request, refusal = self.create_request(scope, body)
            if request is None:
                assert refusal is not None  # create_request answers what it cannot parse
                try:
                    await self.send_response(refusal, send)
                finally:
                    refusal.close()
                return
            await self._serve(request, receive, send)
        finally:
            body.close()

    async def _serve(self, request: HttpRequest, receive: Any, send: Any) -> None:
        """Answer, unless the client goes away first (how a watch usually ends): the answer
        is then cancelled, wherever it is."""
        answering = asyncio.create_task(self._answer(request, send))
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait((answering, listening), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
            answering.cancel()
            outcomes = await asyncio.gather(listening, answering, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError | RequestAborted
            ):
                raise outcome

    async def _answer(self, request: HttpRequest, send: Any) -> None:
        try:
            response = await self.run_get_response(request)
        except BaseException:
            signals.request_finished.send(sender=type(self))
            raise
        try:
            await self.send_response(response, send)
        finally:
            response.close()  # fires request_finished


api_application = APIHandler()
# The benchmark's yardstick (routed only with BERTH_BENCH=1): Django's own request handling.
reference_application = WithoutMiddleware()

# exec, attach and port-forward are WebSockets (``clusterapi.api.streams``).
from clusterapi.api import streams  # noqa: E402 - after Django is set up

streams.accept_slash_in_subprotocols()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = str(scope.get("path", ""))
    if scope["type"] == "http" and path.startswith("/_bench/"):
        await reference_application(scope, receive, send)
    elif scope["type"] == "http" and not path.startswith(BROWSER_PREFIXES):
        await api_application(scope, receive, send)
    elif scope["type"] == "websocket" and path.startswith("/api/"):
        await streams.application(scope, receive, send)
    else:
        await browser_application(scope, receive, send)
