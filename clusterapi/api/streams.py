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
server (``SpdySession``): every data stream becomes one connection to the agent, and a
failure is written to its error stream, as the kubelet does.

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
import struct
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson
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


# --- SPDY/3.1 tunnelled in the WebSocket (port-forward) ------------------------------------
#
# The frames of SPDY/3 (draft-mbelshe-httpbis-spdy-00, section 2): a control frame is
# ``1 | version(15) | type(16) | flags(8) | length(24) | data``, a data frame
# ``0 | stream id(31) | flags(8) | length(24) | data``. Header blocks are
# ``count(32) (name length(32) name value length(32) value)*``, compressed with one zlib
# stream per direction for the whole session, primed with the protocol's dictionary. kubectl's
# SPDY library keeps no flow-control windows, so none are kept here either.

SPDY_VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01
RST_CANCEL = 5
FRAME_HEAD = struct.Struct(">II")
MAX_SPDY_FRAME = 1 << 24


def _dictionary() -> bytes:
    """The SPDY/3 header-compression dictionary: 65 length-prefixed words, then a run of
    status lines, dates and content types, as the draft lists them."""
    header_names = (
        "options head post put delete trace accept accept-charset accept-encoding "
        "accept-language accept-ranges age allow authorization cache-control connection "
        "content-base content-encoding content-language content-length content-location "
        "content-md5 content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
        "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
        "server te trailer transfer-encoding upgrade user-agent vary via warning "
        "www-authenticate method get status"
    )
    words = [
        *header_names.split(" "),
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
        "charset=iso-8859-1,utf-,*,enq=0."
    )
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


SPDY_DICTIONARY = _dictionary()


def encode_header_block(headers: dict[str, str]) -> bytes:
    """An uncompressed SPDY/3 header block."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        raw_name, raw_value = name.lower().encode(), value.encode()
        out.append(struct.pack(">I", len(raw_name)) + raw_name)
        out.append(struct.pack(">I", len(raw_value)) + raw_value)
    return b"".join(out)


def decode_header_block(block: bytes) -> dict[str, str]:
    """Names (lower case) and values (several joined by NUL, as sent) of a header block."""
    (count,) = struct.unpack_from(">I", block, 0)
    offset, headers = 4, {}
    for _ in range(count):
        (length,) = struct.unpack_from(">I", block, offset)
        name = block[offset + 4 : offset + 4 + length].decode("latin-1").lower()
        offset += 4 + length
        (length,) = struct.unpack_from(">I", block, offset)
        headers[name] = block[offset + 4 : offset + 4 + length].decode("latin-1")
        offset += 4 + length
    return headers


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    return FRAME_HEAD.pack(0x80000000 | SPDY_VERSION << 16 | kind, flags << 24 | len(payload)) + (
        payload
    )


def data_frame(stream_id: int, flags: int, payload: bytes) -> bytes:
    return FRAME_HEAD.pack(stream_id & 0x7FFFFFFF, flags << 24 | len(payload)) + payload


@dataclass
class SpdyFrame:
    """One parsed frame: ``control`` frames have ``kind``; data frames ``stream_id``."""

    control: bool
    kind: int
    stream_id: int
    flags: int
    payload: bytes


class SpdyParser:
    """Cuts a byte stream (WebSocket messages need not align with frames) into frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[SpdyFrame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= FRAME_HEAD.size:
            first, second = FRAME_HEAD.unpack_from(self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < FRAME_HEAD.size + length:
                break
            payload = bytes(self._buffer[FRAME_HEAD.size : FRAME_HEAD.size + length])
            del self._buffer[: FRAME_HEAD.size + length]
            if first & 0x80000000:
                frames.append(SpdyFrame(True, first & 0xFFFF, 0, second >> 24, payload))
            else:
                frames.append(SpdyFrame(False, 0, first & 0x7FFFFFFF, second >> 24, payload))
        return frames


@dataclass
class _Forward:
    """One forwarded connection: kubectl's error and data streams of one ``requestid``."""

    port: str
    error_stream: int = 0
    data_stream: int = 0
    pending: list[bytes] = dataclasses.field(default_factory=list)
    client_done: bool = False
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None


class SpdySession:
    """The server side of kubectl's SPDY session (module docstring): each pair of streams
    becomes a connection through the agent to the pod's port."""

    def __init__(self, plan: Plan, receive: Receive, send: Send) -> None:
        self.plan = plan
        self.receive = receive
        self._send = send
        self._parser = SpdyParser()
        self._inflate = zlib.decompressobj(zdict=SPDY_DICTIONARY)
        self._deflate = zlib.compressobj(zdict=SPDY_DICTIONARY)
        self._lock = asyncio.Lock()
        self._forwards: dict[str, _Forward] = {}
        self._by_stream: dict[int, _Forward] = {}
        self._closed = False

    async def send(self, frame: bytes) -> None:
        if not self._closed:
            await self._send({"type": "websocket.send", "bytes": frame})

    async def run(self) -> None:
        try:
            while True:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes") or b""
                for frame in self._parser.feed(data):
                    if await self._handle(frame) is False:
                        return
        finally:
            self._closed = True
            for forward in self._forwards.values():
                if forward.task is not None:
                    forward.task.cancel()
                if forward.writer is not None:
                    forward.writer.close()
            tasks = [f.task for f in self._forwards.values() if f.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, frame: SpdyFrame) -> bool:
        if not frame.control:
            forward = self._by_stream.get(frame.stream_id)
            if forward is None or frame.stream_id != forward.data_stream:
                return True  # the error stream's (empty) end, or a stream already gone
            if frame.payload:
                if forward.writer is not None:
                    forward.writer.write(frame.payload)
                    with contextlib.suppress(ConnectionError):
                        await forward.writer.drain()
                else:
                    forward.pending.append(frame.payload)
            if frame.flags & FLAG_FIN:
                forward.client_done = True
                if forward.writer is not None and forward.writer.can_write_eof():
                    forward.writer.write_eof()
            return True
        if frame.kind == SYN_STREAM:
            await self._syn_stream(frame)
        elif frame.kind == RST_STREAM:
            (stream_id,) = struct.unpack_from(">I", frame.payload)
            forward = self._by_stream.get(stream_id & 0x7FFFFFFF)
            if forward is not None and forward.writer is not None:
                forward.writer.close()
        elif frame.kind == PING:
            async with self._lock:
                await self.send(control_frame(PING, 0, frame.payload))
        elif frame.kind == GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do

    async def _syn_stream(self, frame: SpdyFrame) -> None:
        (stream_id,) = struct.unpack_from(">I", frame.payload)
        stream_id &= 0x7FFFFFFF
        headers = decode_header_block(self._inflate.decompress(frame.payload[10:]))
        async with self._lock:
            block = self._deflate.compress(encode_header_block({}))
            block += self._deflate.flush(zlib.Z_SYNC_FLUSH)
            await self.send(control_frame(SYN_REPLY, 0, struct.pack(">I", stream_id) + block))
        request_id = headers.get("requestid", "")
        forward = self._forwards.get(request_id)
        if forward is None:
            forward = self._forwards[request_id] = _Forward(port=headers.get("port", ""))
        self._by_stream[stream_id] = forward
        if headers.get("streamtype") == "error":
            forward.error_stream = stream_id
        elif headers.get("streamtype") == "data":
            forward.data_stream = stream_id
        if forward.error_stream and forward.data_stream and forward.task is None:
            forward.task = asyncio.create_task(self._forward(forward))

    async def _forward(self, forward: _Forward) -> None:
        """Connect through the agent and copy the pod's bytes into the data stream."""
        try:
            reader, writer = await connect_agent(self.plan, [("port", forward.port)])
        except AgentRefused as exc:
            try:
                message = str(orjson.loads(exc.response.content).get("message"))
            except (orjson.JSONDecodeError, AttributeError):
                message = exc.response.content.decode(errors="replace")
            async with self._lock:
                await self.send(data_frame(forward.error_stream, FLAG_FIN, message.encode()))
                await self.send(data_frame(forward.data_stream, FLAG_FIN, b""))
            return
        forward.writer = writer
        for chunk in forward.pending:
            writer.write(chunk)
        forward.pending.clear()
        if forward.client_done and writer.can_write_eof():
            writer.write_eof()
        try:
            while chunk := await reader.read(agent_streams.READ_SIZE):
                async with self._lock:
                    await self.send(data_frame(forward.data_stream, 0, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            async with self._lock:
                await self.send(data_frame(forward.data_stream, FLAG_FIN, b""))
                await self.send(data_frame(forward.error_stream, FLAG_FIN, b""))
