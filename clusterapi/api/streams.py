"""``pods/exec``, ``pods/attach`` and ``pods/portforward``: WebSocket streams to the node agent.

What kubectl sends
------------------
kubectl (1.30 and later, so 1.32 and 1.37 alike) opens a WebSocket with a ``GET`` of
``/api/v1/namespaces/{ns}/pods/{name}/exec?command=..&command=..&container=..&stdin=true&
stdout=true&stderr=true&tty=false`` (``attach`` the same without ``command``), offering the
subprotocols ``v5.channel.k8s.io`` and older ones. Each binary message is one byte of stream id
and the payload: 0 stdin, 1 stdout, 2 stderr, 3 error (the server's last word, a ``Status``: a
non-zero exit is ``NonZeroExitCode`` with an ``ExitCode`` cause, which kubectl turns into
``command terminated with exit code N`` and its own exit code), 4 resize (a
``{"Width":..,"Height":..}`` from the terminal); ``v5`` adds 255, close, whose payload names
the stream the client has finished writing (stdin at end of file). ``v4`` lacks it; older
versions are not served.

``port-forward`` also upgrades with a ``GET`` of ``.../portforward``, offering the subprotocol
``SPDY/3.1+portforward.k8s.io`` (KEP-4006): the WebSocket's binary messages carry a SPDY/3.1
session byte for byte, in which kubectl opens, per local connection, an ``error`` stream and a
``data`` stream (headers ``streamType``, ``port``, ``requestID``). This module is the SPDY
server (``clusterapi.api.portforward``): every data stream becomes one connection to the agent,
and a failure is written to its error stream, as the kubelet does.

Flow
----
The handshake is authenticated and authorized like any request (``admit_request``, ``get``
from the ``GET``), plus the ``create`` check upstream adds for these upgrades since 1.35
(``AuthorizePodWebsocketUpgradeCreatePermission``): both verbs are needed, as upstream. The
pod, its container and its node are looked up, and the agent is called with a signed
``GET`` (``clusterapi.nodeagent.runtimes.process.streams`` describes that side). A refusal,
ours or the agent's, is the HTTP answer to the upgrade (a ``Status``: 401, 403, 400, 404), so
kubectl prints it as ``error: unable to upgrade connection: ...``. Once the agent has
switched protocols, the WebSocket is accepted and messages are relayed both ways on the
event loop (sessions can last for hours), until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

from clusterapi import store
from clusterapi.api.status import error_response
from clusterapi.nodeagent.runtimes.process import streams as agent_streams
from clusterapi.store import errors
from clusterapi.store.errors import ApiError

logger = logging.getLogger(__name__)

PATH = re.compile(
    r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/"
    r"(?P<subresource>exec|attach|portforward)/?$"
)
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CONNECT_TIMEOUT = 5.0
MAX_HEAD = 64 * 1024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def stream_target(path: str) -> tuple[str, str, str] | None:
    """(namespace, pod, subresource) when ``path`` is an exec, attach or portforward path."""
    match = PATH.match(path)
    return (match["namespace"], match["name"], match["subresource"]) if match else None


def choose_protocol(subresource: str, offered: list[str]) -> str | None:
    """The subprotocol to answer with, in our order of preference; None when none fits."""
    wanted = (PORT_FORWARD_PROTOCOL,) if subresource == "portforward" else CHANNEL_PROTOCOLS
    return next((p for p in wanted if p in offered), None)


@dataclass(frozen=True)
class Plan:
    """Where the agent serves this stream, and how to sign the request."""

    host: str
    port: int
    node: str
    key: bytes
    path: str  # without the query: port-forward adds one per connection
    query: list[tuple[str, str]]

    def target(self, extra: Sequence[tuple[str, str]] = ()) -> str:
        return f"{self.path}?{urlencode([*self.query, *extra])}"


def accept_slash_in_subprotocols() -> None:
    """Let kubectl offer ``SPDY/3.1+portforward.k8s.io``.

    The ``websockets`` library parses ``Sec-WebSocket-Protocol`` as RFC 6455 tokens, which
    cannot hold ``/``, and fails the handshake with a 400 (Go's servers accept it). uvicorn
    reads the offers itself (split on commas) into the scope and answers with the one the
    application accepts, so the library's own parse is skipped: it chose nothing anyway,
    having no subprotocols configured.
    """
    from websockets.server import ServerProtocol

    def process_subprotocol(self: ServerProtocol, headers: Any) -> None:
        return None

    ServerProtocol.process_subprotocol = process_subprotocol  # type: ignore[method-assign]


# --- authorization and look-up (blocking: on the thread pool) ------------------------------


def _request(scope: Scope) -> HttpRequest:
    """A Django request for the handshake, so the one authenticator chain and RBAC apply."""
    http_scope = {**scope, "type": "http", "method": "GET", "scheme": "https"}
    return ASGIRequest(http_scope, io.BytesIO())


def _options(request: HttpRequest, subresource: str) -> list[tuple[str, str]]:
    query = request.GET
    if subresource == "portforward":
        return []
    flags = {name: query.get(name, "").lower() in ("true", "1") for name in _FLAGS}
    if flags["tty"] and flags["stderr"]:
        flags["stderr"] = False  # a terminal has one output stream, as the kubelet treats it
    if not (flags["stdin"] or flags["stdout"] or flags["stderr"]):
        raise errors.bad_request("you must specify at least one of stdin, stdout, stderr")
    out = [(name, "true") for name, value in flags.items() if value]
    if subresource == "exec":
        commands = query.getlist("command")
        if not commands:
            raise errors.bad_request("you must specify at least 1 command")
        out.extend(("command", command) for command in commands)
    return out


_FLAGS = ("stdin", "stdout", "stderr", "tty")


def plan(request: HttpRequest, namespace: str, name: str, subresource: str) -> Plan | HttpResponse:
    """Authenticate, authorize (``get`` and ``create``), validate and look everything up."""
    from clusterapi.api.podlogs import _container, agent_endpoint
    from clusterapi.api.views import admit_request, audit_request, unauthorized
    from clusterapi.rbac import authorize, forbidden_error
    from clusterapi.resources import by_kind

    close_old_connections()
    try:
        try:
            if admit_request(request) is None:
                audit_request(request, 401)
                return unauthorized()
            attrs = request.berth_attributes  # type: ignore[attr-defined]
            creating = dataclasses.replace(attrs, verb="create")
            decision = authorize(creating)
            if not decision.allowed:
                request.berth_attributes = creating  # type: ignore[attr-defined]
                raise forbidden_error(creating, decision.reason)
            request.berth_attributes = creating  # type: ignore[attr-defined]
            options = _options(request, subresource)
            pods = by_kind("v1", "Pod")
            assert pods is not None
            pod = store.get(pods, namespace, name)
            phase = str((pod.get("status") or {}).get("phase") or "")
            if phase in ("Succeeded", "Failed"):
                raise errors.bad_request(
                    f"cannot {'exec into' if subresource == 'exec' else 'connect to'} a "
                    f"container in a completed pod; current phase is {phase}"
                )
            container = ""
            if subresource != "portforward":
                container = _container(pod, name, request.GET.get("container", ""))
            node_name, address, port, key = agent_endpoint(pod, "streams")
        except ApiError as exc:
            audit_request(request, exc.code)
            return error_response(exc)
        audit_request(request, 101)
        ns, pod_name = quote(namespace, safe=""), quote(name, safe="")
        if subresource == "portforward":
            path = f"/portForward/{ns}/{pod_name}"
        else:
            path = f"/{subresource}/{ns}/{pod_name}/{quote(container, safe='')}"
        query = [("uid", str(pod["metadata"]["uid"])), *options]
        return Plan(address, port, node_name, key, path, query)
    finally:
        close_old_connections()


async def not_upgraded(request: HttpRequest) -> HttpResponse:
    """A request for a stream that is no WebSocket (kubectl falls back to SPDY after a
    refused upgrade): the same refusals, else upstream's 400 for a missing upgrade."""
    where = stream_target(request.path)
    assert where is not None
    found = await sync_to_async(plan, thread_sensitive=False)(request, *where)
    if isinstance(found, HttpResponse):
        return found
    return error_response(errors.bad_request("Upgrade request required"))


# --- the agent connection ------------------------------------------------------------------


class AgentRefused(Exception):
    """The agent answered the upgrade with an error (``response``: what to tell the client)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


async def connect_agent(
    plan: Plan,
    extra: Sequence[tuple[str, str]] = (),
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the agent's stream for ``plan``; raises ``AgentRefused``."""
    from clusterapi.api.podlogs import _relay_error, _service_unavailable
    from clusterapi.nodeagent.runtimes.process.logserver import sign

    target = plan.target(extra)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(plan.host, plan.port), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        raise AgentRefused(
            error_response(
                _service_unavailable(
                    f"the node agent of node {plan.node} cannot be reached: "
                    f"{exc.__class__.__name__}: {exc}"
                )
            )
        ) from None
    host = f"[{plan.host}]" if ":" in plan.host else plan.host
    writer.write(
        (
            f"GET {target} HTTP/1.1\r\nHost: {host}:{plan.port}\r\n"
            f"Authorization: {sign(plan.key, plan.node, target)}\r\n"
            "Connection: Upgrade\r\nUpgrade: berth-stream\r\n\r\n"
        ).encode()
    )
    try:
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        raise AgentRefused(
            error_response(_service_unavailable(f"the node agent of node {plan.node} hung up"))
        ) from None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    code = int(status_line.split(" ")[1]) if status_line.count(" ") >= 1 else 0
    if code == 101:
        return reader, writer
    length = 0
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    body = b""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
        body = await asyncio.wait_for(reader.readexactly(min(length, MAX_HEAD)), 10)
    writer.close()
    raise AgentRefused(_relay_error(code, body))


# --- the ASGI websocket application --------------------------------------------------------


async def _deny(scope: Scope, send: Send, response: HttpResponse) -> None:
    """Refuse the upgrade with an HTTP answer (a ``Status``), as upstream does."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": response.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(response.content)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": response.content})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket of ``exec``, ``attach`` or ``portforward`` (module docstring)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    where = stream_target(str(scope.get("path") or ""))
    if where is None:
        await _deny(
            scope,
            send,
            error_response(
                ApiError(404, "NotFound", "the server could not find the requested resource")
            ),
        )
        return
    namespace, name, subresource = where
    request = _request(scope)
    found = await sync_to_async(plan, thread_sensitive=False)(request, namespace, name, subresource)
    if isinstance(found, HttpResponse):
        await _deny(scope, send, found)
        return
    protocol = choose_protocol(subresource, list(scope.get("subprotocols") or ()))
    if protocol is None:
        offered = ", ".join(scope.get("subprotocols") or ()) or "none"
        wanted = (
            PORT_FORWARD_PROTOCOL if subresource == "portforward" else ", ".join(CHANNEL_PROTOCOLS)
        )
        await _deny(
            scope,
            send,
            error_response(
                errors.bad_request(
                    f"unable to upgrade: no supported subprotocol (offered: {offered}; "
                    f"supported: {wanted})"
                )
            ),
        )
        return
    if subresource == "portforward":
        # Imported here: the SPDY session connects through this module's connect_agent.
        from clusterapi.api.portforward import SpdySession

        await send({"type": "websocket.accept", "subprotocol": protocol})
        await SpdySession(found, receive, send).run()
        return
    try:
        reader, writer = await connect_agent(found)
    except AgentRefused as exc:
        await _deny(scope, send, exc.response)
        return
    await send({"type": "websocket.accept", "subprotocol": protocol})
    await relay_channels(reader, writer, receive, send)


async def relay_channels(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, receive: Receive, send: Send
) -> None:
    """Copy channel messages between the client's WebSocket and the agent's frames."""

    async def upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None and message.get("text") is not None:
                data = str(message["text"]).encode()
            if data:
                writer.write(agent_streams.frame(data[0], data[1:]))
                await writer.drain()

    async def downstream() -> None:
        while (item := await agent_streams.read_frame(reader)) is not None:
            channel, payload = item
            await send({"type": "websocket.send", "bytes": bytes([channel]) + payload})

    up, down = asyncio.create_task(upstream()), asyncio.create_task(downstream())
    try:
        await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        if down.done():
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1000})
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
