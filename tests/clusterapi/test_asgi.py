"""The ASGI entry point: which handler serves what, and the API handler's request lifecycle.

The API handler fires Django's request signals inline and starts no thread of its own, so
these tests drive it with a scripted ASGI ``receive``/``send`` pair: an answer is sent and
closed, a client that goes away ends a streaming answer, and each request fires
``request_started`` and ``request_finished`` exactly once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.core import signals
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import URLPattern, URLResolver, path

from clusterapi import asgi
from clusterapi.api import urls as api_urls

Message = dict[str, Any]
stream_closed = threading.Event()


async def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hello": request.path})


async def endless(request: HttpRequest) -> StreamingHttpResponse:
    async def lines() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"{}\n"
                await asyncio.sleep(0.01)
        finally:
            stream_closed.set()

    return StreamingHttpResponse(lines(), content_type="application/json")


urlpatterns = [path("hello", hello), path("endless", endless)]


@pytest.fixture
def routes(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    stream_closed.clear()


@pytest.fixture
def fired() -> Iterator[list[str]]:
    seen: list[str] = []

    def started(**_: Any) -> None:
        seen.append("started")

    def finished(**_: Any) -> None:
        seen.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        yield seen
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)


def scope(path_: str) -> Message:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path_,
        "raw_path": path_.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 6443),
    }


def drive(path_: str, *, disconnect_after: int | None = None) -> list[Message]:
    """Serve one request; the client disconnects once it has ``disconnect_after`` body parts
    (never, when None). Returns what the handler sent."""
    sent: list[Message] = []

    async def run() -> None:
        got_enough = asyncio.Event()
        requested = False

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await got_enough.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            parts = sum(1 for m in sent if m["type"] == "http.response.body")
            if disconnect_after is not None and parts >= disconnect_after:
                got_enough.set()

        await asyncio.wait_for(asgi.api_application(scope(path_), receive, send), timeout=10)

    started: list[str] = []
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    threading.Thread.start = counted  # type: ignore[method-assign,assignment]
    try:
        asyncio.run(run())
    finally:
        threading.Thread.start = start  # type: ignore[method-assign]
    assert started == []  # no thread per request
    return sent


def test_an_answer_is_sent_and_the_request_signals_fire_once(
    routes: None, fired: list[str]
) -> None:
    sent = drive("/hello")
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b'{"hello": "/hello"}'
    assert fired == ["started", "finished"]


def test_a_client_that_goes_away_ends_a_streaming_answer(routes: None, fired: list[str]) -> None:
    sent = drive("/endless", disconnect_after=3)
    assert sent[0]["status"] == 200
    assert stream_closed.is_set()
    assert fired == ["started", "finished"]


def test_every_api_route_is_async_and_browser_paths_keep_the_full_chain() -> None:
    """The API handler gives no view a thread of its own: a blocking one must be wrapped
    (``api.urls.authenticated``/``public``) to run on the shared pool."""

    def views(patterns: list[Any]) -> Iterator[tuple[str, Any]]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from views(entry.url_patterns)
            elif isinstance(entry, URLPattern) and not str(entry.pattern).startswith("^_bench"):
                yield str(entry.pattern), entry.callback

    blocking = [name for name, view in views(api_urls.urlpatterns) if not _is_async(view)]
    assert blocking == []
    for prefix in ("/ui", "/admin", "/static", "/dex"):
        assert prefix in asgi.BROWSER_PREFIXES


def _is_async(view: Any) -> bool:
    return asyncio.iscoroutinefunction(view) or getattr(view, "_is_coroutine", False) is True
