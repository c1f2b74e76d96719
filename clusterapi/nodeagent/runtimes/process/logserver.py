"""The agent's log endpoint, and how the API server proves it may read it.

Transport
---------
The agent listens on ``<bind host>:<port>`` (plain HTTP/1.1, asyncio streams, one request
per connection) and records the port as ``status.daemonEndpoints.kubeletEndpoint.Port`` and
its address as the Node's ``InternalIP``. The API server's ``pods/log``
(``clusterapi.api.podlogs``) calls ``GET /containerLogs/<ns>/<pod>/<container>?uid=..&follow=
..&tailLines=..&sinceSeconds=..&sinceTime=..&timestamps=..&previous=..&limitBytes=..`` (the
kubelet's path) and copies the answer to its client as it arrives, so ``kubectl logs -f``
streams, wherever the agent runs.

Security
--------
Users never reach the agent directly with their own credentials: RBAC (``get`` on
``pods/log``) is checked by the API server, and the agent only answers requests the API
server signed. The signing key is shared without any new secret: it is derived from the
node's credential (``node_key``: HMAC of the token's SHA-256 digest). The agent holds the
token; the API server holds only its digest (``ApiToken.digest``) and derives the same key;
nobody else has either, and neither travels over the wire. Each request carries
``Authorization: BerthNodeHMAC <expiry>:<hex>`` where the MAC covers the node name, the
expiry (at most ``MAX_VALIDITY`` seconds ahead) and the exact request target, so a captured
header reads nothing else and expires within a minute. A node whose agent used a non-node
token (no node credential) serves no logs. The channel itself is not encrypted: across an
untrusted network, log contents are as visible as any plain-HTTP traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from clusterapi.nodeagent.runtimes.process import logs, streams

if TYPE_CHECKING:
    from clusterapi.nodeagent.runtimes.process.runtime import ProcessRuntime

logger = logging.getLogger(__name__)

SCHEME = "BerthNodeHMAC"
MAX_VALIDITY = 60
KEY_LABEL = b"berth.dev/node-log-access"
MAX_HEAD = 64 * 1024


def key_from_digest(digest: str) -> bytes:
    """The signing key, from the SHA-256 hex digest the API server stores of a token."""
    return hmac.new(digest.encode(), KEY_LABEL, hashlib.sha256).digest()


def node_key(token: str) -> bytes:
    """The signing key, from the node's token (as ``clusterapi.authn.tokens.digest``)."""
    return key_from_digest(hashlib.sha256(token.encode()).hexdigest())


def _mac(key: bytes, node: str, expires: int, target: str) -> str:
    message = f"{node}\n{expires}\nGET {target}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, node: str, target: str, now: float | None = None) -> str:
    """The ``Authorization`` header value for a GET of ``target`` (path and query)."""
    expires = int((now if now is not None else time.time()) + MAX_VALIDITY)
    return f"{SCHEME} {expires}:{_mac(key, node, expires, target)}"


def verify(key: bytes, node: str, target: str, header: str, now: float | None = None) -> bool:
    """Whether ``header`` signs this GET of ``target`` and has not expired."""
    scheme, _, value = header.partition(" ")
    expires_text, _, mac = value.partition(":")
    if scheme != SCHEME or not expires_text.isdigit():
        return False
    expires = int(expires_text)
    current = now if now is not None else time.time()
    if not current <= expires <= current + MAX_VALIDITY + 5:
        return False
    return hmac.compare_digest(mac, _mac(key, node, expires, target))


def _status(code: int, reason: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    )


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or [""])[-1].lower() in ("true", "1")


def _int(query: dict[str, list[str]], name: str) -> int | None:
    value = (query.get(name) or [""])[-1]
    return int(value) if value.lstrip("-").isdigit() else None


class LogServer:
    """Serves ``/containerLogs`` for one node's ``ProcessRuntime``."""

    def __init__(self, runtime: ProcessRuntime, node: str, key: bytes) -> None:
        self.runtime = runtime
        self.node = node
        self.key = key
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[Any]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:
            logger.exception("log server: request failed")
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self, writer: asyncio.StreamWriter, code: int, reason: str, message: str
    ) -> None:
        body = _status(code, reason, message)
        head = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if len(head) > MAX_HEAD:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rpartition(" ")[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method != "GET":
            await self._answer(writer, 405, "MethodNotAllowed", "only GET is served")
            return
        if not verify(self.key, self.node, target, headers.get("authorization", "")):
            await self._answer(writer, 401, "Unauthorized", "Unauthorized")
            return
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[0] in ("exec", "attach", "portForward"):
            # The streaming endpoints, signed alike (``streams`` has their protocol).
            await streams.serve(
                self.runtime, parts, parse_qs(url.query), reader, writer, self._answer
            )
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            await self._answer(
                writer, 404, "NotFound", "the server could not find the requested resource"
            )
            return
        _, _namespace, pod, container = parts
        query = parse_qs(url.query)
        uid = (query.get("uid") or [""])[-1]
        previous = _flag(query, "previous")
        source = self.runtime.log_source(uid, container, previous)
        if isinstance(source, str):
            if source == "previous":
                message = f'previous terminated container "{container}" in pod "{pod}" not found'
            else:
                reason = source.partition(":")[2]
                message = f'container "{container}" in pod "{pod}" is waiting to start: {reason}'
            await self._answer(writer, 400, "BadRequest", message)
            return
        path, live = source
        since_time = None
        if query.get("sinceTime"):
            since_time = logs.parse_time(query["sinceTime"][-1]) or None
        options = logs.ReadOptions(
            follow=_flag(query, "follow") and not previous,
            tail_lines=_int(query, "tailLines"),
            since_seconds=_int(query, "sinceSeconds"),
            since_time=since_time,
            timestamps=_flag(query, "timestamps"),
            limit_bytes=_int(query, "limitBytes"),
        )
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()

        async def copy() -> None:
            async for chunk in logs.read(path, options, live):
                writer.write(chunk)
                await writer.drain()

        # A follower waits quietly between lines: notice a client that went away meanwhile.
        copying = asyncio.create_task(copy())
        hangup = asyncio.create_task(reader.read(1))
        try:
            await asyncio.wait((copying, hangup), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (copying, hangup):
                task.cancel()
            await asyncio.gather(copying, hangup, return_exceptions=True)
        if copying.done() and not copying.cancelled() and copying.exception() is not None:
            raise copying.exception()  # type: ignore[misc]
