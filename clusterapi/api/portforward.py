"""``pods/portforward``: the SPDY/3.1 session kubectl tunnels in the WebSocket.

kubectl (KEP-4006) upgrades ``.../portforward`` to a WebSocket with the subprotocol
``SPDY/3.1+portforward.k8s.io`` and then speaks SPDY/3.1 inside its binary messages, byte for
byte. Per local connection it opens an ``error`` stream and a ``data`` stream (headers
``streamType``, ``port``, ``requestID``). ``SpdySession`` is the server side: each pair
becomes one connection through the node agent to the pod's port
(``clusterapi.api.streams.connect_agent``), and a failure is written to the error stream, as
the kubelet does. ``clusterapi.api.streams`` authorizes the upgrade and hands the accepted
WebSocket over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import struct
import zlib
from dataclasses import dataclass

import orjson

from clusterapi.api.streams import AgentRefused, Plan, Receive, Send, connect_agent
from clusterapi.nodeagent.runtimes.process import streams as agent_streams

logger = logging.getLogger(__name__)

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
            writer = forward.writer
            # The pod's side may have finished already (a server that closes after its
            # answer): what kubectl still sends for this connection, its end included, has
            # nowhere to go and must not end the session with it.
            if writer is not None and writer.is_closing():
                return True
            if frame.payload:
                if writer is not None:
                    writer.write(frame.payload)
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                else:
                    forward.pending.append(frame.payload)
            if frame.flags & FLAG_FIN:
                forward.client_done = True
                if writer is not None and writer.can_write_eof():
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        writer.write_eof()
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
