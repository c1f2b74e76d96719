"""Port-forward's SPDY/3.1 framing (``clusterapi.api.portforward``)."""

from __future__ import annotations

import asyncio
import struct
import zlib
from typing import Any

import uvloop

from clusterapi.api import portforward


def test_the_spdy_dictionary_is_the_drafts() -> None:
    # Its size and Adler-32 (the DICTID a SPDY/3 zlib stream names) as kubectl's streams carry.
    assert len(portforward.SPDY_DICTIONARY) == 1423
    assert zlib.adler32(portforward.SPDY_DICTIONARY) == 0xE3C6A7C2


def test_header_blocks_round_trip_through_the_session_compressors() -> None:
    deflate = zlib.compressobj(zdict=portforward.SPDY_DICTIONARY)
    inflate = zlib.decompressobj(zdict=portforward.SPDY_DICTIONARY)
    for request_id in ("0", "1"):
        headers = {"streamType": "data", "port": "8000", "requestID": request_id}
        block = deflate.compress(portforward.encode_header_block(headers))
        block += deflate.flush(zlib.Z_SYNC_FLUSH)
        assert portforward.decode_header_block(inflate.decompress(block)) == {
            "streamtype": "data",
            "port": "8000",
            "requestid": request_id,
        }


def test_the_parser_cuts_frames_wherever_messages_split_them() -> None:
    syn = portforward.control_frame(portforward.SYN_STREAM, 0, struct.pack(">II", 1, 0) + b"\0\0")
    data = portforward.data_frame(1, portforward.FLAG_FIN, b"GET / HTTP/1.0\r\n\r\n")
    ping = portforward.control_frame(portforward.PING, 0, struct.pack(">I", 7))
    wire = syn + data + ping
    assert wire[:4] == bytes([0x80, 0x03, 0x00, 0x01])  # control bit, version 3, SYN_STREAM
    parser = portforward.SpdyParser()
    frames = []
    for start in range(0, len(wire), 5):
        frames.extend(parser.feed(wire[start : start + 5]))
    assert [(f.control, f.kind, f.stream_id, f.flags) for f in frames] == [
        (True, portforward.SYN_STREAM, 0, 0),
        (False, 0, 1, portforward.FLAG_FIN),
        (True, portforward.PING, 0, 0),
    ]
    assert frames[1].payload == b"GET / HTTP/1.0\r\n\r\n"


def test_kubectls_end_of_a_connection_the_pod_already_closed_keeps_the_session() -> None:
    """A pod's server that closes after answering (HTTP/1.0) races kubectl's FIN on the data
    stream; under uvloop (as uvicorn runs) a half-close of the closed connection raised and
    took the whole session, and every later connection, with it."""
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["bytes"])

    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
        session = portforward.SpdySession(None, None, send)  # type: ignore[arg-type]
        forward = portforward._Forward(port="8000", error_stream=1, data_stream=3, writer=writer)
        session._by_stream.update({1: forward, 3: forward})
        fin = portforward.SpdyFrame(False, 0, 3, portforward.FLAG_FIN, b"late bytes")
        assert await session._handle(fin) is True
        ping = portforward.SpdyFrame(True, portforward.PING, 0, 0, struct.pack(">I", 7))
        assert await session._handle(ping) is True
        server.close()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert sent == [portforward.control_frame(portforward.PING, 0, struct.pack(">I", 7))]
