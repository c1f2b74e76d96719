"""Watch streams (``?watch=true``): newline-delimited events over a chunked response.

Start rules, as upstream: with no ``resourceVersion`` (or ``"0"``) the stream opens with a
synthetic ADDED for every current object; with ``resourceVersion=N`` it replays the change
log after N, or answers one ERROR event with 410 Expired when N has been compacted away.
``sendInitialEvents=true`` (a streaming list) sends the current state whatever N is, then a
BOOKMARK annotated ``k8s.io/initial-events-end``.
Selectors apply to events: an object that starts matching arrives as ADDED, one that stops
matching as DELETED. The stream ends at ``timeoutSeconds`` (default: a random 30-60 minutes,
as upstream, so ``kubectl get -w`` stays attached), and sends BOOKMARKs only when asked.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from clusterapi import store
from clusterapi.api import table
from clusterapi.api.requests import Target, matcher, query_bool, query_int
from clusterapi.api.status import error_response, status_body
from clusterapi.core import watch as feed
from clusterapi.core.models import Change
from clusterapi.store import errors
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]
BOOKMARK_SECONDS = 60.0


def _history(target: Target, after: int, until: int) -> list[feed.Event]:
    query = Change.objects.filter(
        group=target.kind.group,
        resource=target.kind.plural,
        revision__gt=after,
        revision__lte=until,
    )
    if target.namespace:
        query = query.filter(namespace=target.namespace)
    rows = query.order_by("revision").values_list(
        "revision", "type", "group", "resource", "namespace", "name", "data", "previous"
    )
    return [feed.Event(*row) for row in rows]


def _admit(request: HttpRequest) -> HttpResponse | None:
    """Authenticate and authorize the watch; the refusal to send, or None to go on."""
    from clusterapi.api.views import admit_request, audit_request, unauthorized

    try:
        if admit_request(request) is None:
            audit_request(request, 401)
            return unauthorized()
    except ApiError as exc:
        audit_request(request, exc.code)
        return error_response(exc)
    return None


async def watch(request: HttpRequest, target: Target) -> HttpResponse | StreamingHttpResponse:
    """Answer a watch request (see the module docstring)."""
    to_thread = sync_to_async  # readability: every DB call leaves the event loop
    refusal = await to_thread(_admit, thread_sensitive=False)(request)
    if refusal is not None:
        return refusal
    query = request.GET
    try:
        match, name = matcher(target.kind, query)
        if match is None and name is not None:
            exact = name

            def match(obj: Obj) -> bool:
                return bool((obj.get("metadata") or {}).get("name") == exact)

        timeout = query_int(query, "timeoutSeconds")
        rv_param = query.get("resourceVersion", "")
        start_rv = int(rv_param) if rv_param not in ("", "0") else None
        # Streaming lists (client-go's WatchList, on by default since kubectl 1.35 for
        # `delete`, `wait` and `rollout status`): "true" sends the current state as ADDED
        # whatever resourceVersion says, then a bookmark marking the end of it; "false" with
        # no resourceVersion starts from now without the synthetic ADDED events.
        send_initial = query.get("sendInitialEvents", "").lower()
    except ValueError:
        return error_response(errors.bad_request(f"invalid resourceVersion: {rv_param!r}"))
    except ApiError as exc:
        return error_response(exc)
    if timeout is None or timeout <= 0:
        timeout = int(1800 * (1 + random.random()))  # noqa: S311 - spreading reconnects
    bookmarks = query_bool(query, "allowWatchBookmarks")
    as_table = table.wanted(request) is not None

    await to_thread(feed.start, thread_sensitive=False)()
    sub = feed.subscribe(target.kind.group, target.kind.plural)
    try:
        initial: list[bytes] = []
        seen: dict[tuple[str, str], int] = {}
        history: list[feed.Event] = []
        if send_initial == "true" or (start_rv is None and send_initial != "false"):
            listed = await to_thread(store.list_objects, thread_sensitive=False)(
                target.kind, target.namespace or None, match=match
            )
            for obj in listed.objects():
                meta = obj["metadata"]
                seen[(meta.get("namespace", ""), meta["name"])] = int(meta["resourceVersion"])
                initial.append(_line("ADDED", obj, target, request, as_table))
            if send_initial == "true":
                # client-go waits for this marker before it treats the list as synced.
                initial.append(_bookmark(target, listed.resource_version, initial_events_end=True))
            last_rv = max(listed.resource_version, sub.start)
        elif start_rv is None:
            last_rv = sub.start
        else:
            history = await to_thread(_history, thread_sensitive=False)(target, start_rv, sub.start)
            # Checked after reading the history, so a compaction racing with that read cannot
            # leave a silent gap: the rows read are complete iff start_rv is still retained.
            compacted = await to_thread(store.objects.compacted_revision, thread_sensitive=False)()
            if start_rv < compacted - 1:
                sub.close()
                # Upstream names the newest revision that is gone (oldest retained - 1).
                gone = errors.gone(f"too old resource version: {start_rv} ({compacted - 1})")
                body = orjson.dumps({"type": "ERROR", "object": status_body(gone)}) + b"\n"
                return StreamingHttpResponse(iter([body]), content_type="application/json")
            last_rv = max(start_rv, sub.start)
    except BaseException:
        sub.close()
        raise

    async def stream() -> AsyncIterator[bytes]:
        nonlocal last_rv
        deadline = time.monotonic() + timeout
        try:
            for line in initial:
                yield line
            for past in history:
                replayed = _event_line(past, target, match, request, as_table, seen)
                if replayed:
                    yield replayed
            next_bookmark = time.monotonic() + BOOKMARK_SECONDS
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(next_bookmark - now, 0.0))
                try:
                    event: feed.Event | None = await asyncio.wait_for(
                        _next(sub.queue), timeout=wait
                    )
                except TimeoutError:
                    if bookmarks and time.monotonic() >= next_bookmark:
                        next_bookmark = time.monotonic() + BOOKMARK_SECONDS
                        yield _bookmark(target, max(last_rv, feed.feed().position))
                    continue
                if event is None:
                    return
                last_rv = event.revision
                live = _event_line(event, target, match, request, as_table, seen)
                if live:
                    yield live
        finally:
            sub.close()

    response = StreamingHttpResponse(stream(), content_type="application/json")
    response["Cache-Control"] = "no-cache, private"
    return response


async def _next(queue: asyncio.Queue[feed.Event | None]) -> feed.Event | None:
    return await queue.get()


def _line(kind_: str, obj: Obj, target: Target, request: HttpRequest, as_table: bool) -> bytes:
    if as_table:
        body = table.build(
            target.kind, [obj], request, str(obj["metadata"].get("resourceVersion", ""))
        )
        return orjson.dumps({"type": kind_, "object": body}) + b"\n"
    return orjson.dumps({"type": kind_, "object": obj}) + b"\n"


def _event_line(
    event: feed.Event,
    target: Target,
    match: Callable[[Obj], bool] | None,
    request: HttpRequest,
    as_table: bool,
    seen: dict[tuple[str, str], int],
) -> bytes | None:
    if target.namespace and event.namespace != target.namespace:
        return None
    key = (event.namespace, event.name)
    listed = seen.get(key)
    if listed is not None and event.revision <= listed:
        # Already reflected in the synthetic ADDED of the initial list.
        return None
    kind_ = event.type
    if match is not None or as_table:
        obj = store.objects.decode(event.data)
        if match is not None:
            now = match(obj)
            before = (
                match(store.objects.decode(event.previous))
                if event.type == Change.MODIFIED and event.previous
                else now
            )
            if event.type == Change.MODIFIED:
                if now and not before:
                    kind_ = Change.ADDED
                elif before and not now:
                    kind_ = Change.DELETED
                elif not now:
                    return None
            elif not now:
                return None
        return _line(kind_, obj, target, request, as_table)
    return b'{"type":"' + kind_.encode() + b'","object":' + event.data.encode() + b"}\n"


def _bookmark(target: Target, revision: int, *, initial_events_end: bool = False) -> bytes:
    metadata: Obj = {"resourceVersion": str(revision)}
    if initial_events_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return (
        orjson.dumps(
            {
                "type": "BOOKMARK",
                "object": {
                    "kind": target.kind.kind,
                    "apiVersion": target.kind.api_version,
                    "metadata": metadata,
                },
            }
        )
        + b"\n"
    )
