"""The node agent's keep-alive HTTP/1.1 pool against a small loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from clusterapi.nodeagent.agent import ConnectionPool
from tests.live import free_port

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]


async def serve(handler: Handler) -> tuple[asyncio.Server, list[bytes], list[int]]:
    """A server calling ``handler(request head, writer)`` per request; the handler returns
    whether to keep the connection. Records request heads and counts connections."""
    heads: list[bytes] = []
    connections = [0]

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                heads.append(head + body)
                if not await handler(head, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    return server, heads, connections


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def plain(head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    )
    await writer.drain()
    return True


def test_requests_reuse_one_connection_and_send_the_body() -> None:
    async def main() -> None:
        server, heads, connections = await serve(plain)
        pool = ConnectionPool(f"http://127.0.0.1:{port_of(server)}", True, timeout=5)
        assert await pool.request("GET", "/a", {"Accept": "x"}, params={"f": "a!=b"}) == (
            200,
            b"{}",
        )
        status, _ = await pool.request("PUT", "/b", {}, b'{"k": 1}')
        assert status == 200
        assert connections[0] == 1
        assert heads[0].startswith(b"GET /a?f=a%21%3Db HTTP/1.1\r\n")
        assert b"Host: 127.0.0.1:" in heads[0] and b"Accept: x" in heads[0]
        assert heads[1].startswith(b"PUT /b HTTP/1.1") and heads[1].endswith(b'\r\n\r\n{"k": 1}')
        assert b"Content-Length: 8" in heads[1]
        pool.close()
        server.close()

    asyncio.run(main())


def test_a_chunked_answer_is_reassembled() -> None:
    async def chunked(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
            b'3\r\n{"a\r\n4;ext=1\r\n": 1\r\n1\r\n}\r\n0\r\n\r\n'
        )
        await writer.drain()
        return True

    async def main() -> None:
        server, _heads, connections = await serve(chunked)
        pool = ConnectionPool(f"http://127.0.0.1:{port_of(server)}", True, timeout=5)
        assert await pool.request("POST", "/x", {}, b"{}") == (201, b'{"a": 1}')
        assert await pool.request("POST", "/x", {}, b"{}") == (201, b'{"a": 1}')
        assert connections[0] == 1
        pool.close()
        server.close()

    asyncio.run(main())


def test_a_connection_the_server_closed_is_replaced_and_the_request_sent_again() -> None:
    async def once(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await plain(head, writer)
        return False  # closes after each answer, without saying so

    async def main() -> None:
        server, heads, connections = await serve(once)
        pool = ConnectionPool(f"http://127.0.0.1:{port_of(server)}", True, timeout=5)
        for _ in range(3):
            assert await pool.request("GET", "/", {}) == (200, b"{}")
            await asyncio.sleep(0.05)  # the server's close arrives
        assert connections[0] == 3 and len(heads) == 3
        pool.close()
        server.close()

    asyncio.run(main())


def test_connection_close_is_honoured() -> None:
    async def closing(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        return False

    async def main() -> None:
        server, _heads, connections = await serve(closing)
        pool = ConnectionPool(f"http://127.0.0.1:{port_of(server)}", True, timeout=5)
        assert await pool.request("GET", "/", {}) == (404, b"")
        assert await pool.request("GET", "/", {}) == (404, b"")
        assert connections[0] == 2
        server.close()

    asyncio.run(main())


def test_failures_are_httpx_transport_errors() -> None:
    async def silent(head: bytes, writer: asyncio.StreamWriter) -> bool:
        return False  # closes without an answer

    async def slow(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async def main() -> None:
        server, _heads, _connections = await serve(silent)
        pool = ConnectionPool(f"http://127.0.0.1:{port_of(server)}", True, timeout=5)
        with pytest.raises(httpx.RemoteProtocolError):
            await pool.request("GET", "/", {})
        server.close()
        server, _heads, _connections = await serve(slow)
        pool = ConnectionPool(f"http://127.0.0.1:{port_of(server)}", True, timeout=0.2)
        with pytest.raises(httpx.ReadTimeout):
            await pool.request("GET", "/", {})
        server.close()
        closed = ConnectionPool(f"http://127.0.0.1:{free_port()}", True, timeout=5)
        with pytest.raises(httpx.ConnectError):
            await closed.request("GET", "/", {})

    asyncio.run(main())
