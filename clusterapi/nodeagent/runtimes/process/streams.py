"""exec, attach and port-forward on the agent: the kubelet's streaming endpoints.

Transport
---------
The API server (``clusterapi.api.streams``) calls the agent's server (``logserver``) with a
signed ``GET`` (the same ``BerthNodeHMAC`` scheme as logs, over the exact path and query) of

* ``/exec/<ns>/<pod>/<container>?uid=..&command=..(repeated)&stdin=..&stdout=..&stderr=..&tty=..``
* ``/attach/<ns>/<pod>/<container>?uid=..&stdin=..&stdout=..&stderr=..&tty=..``
* ``/portForward/<ns>/<pod>?uid=..&port=<containerPort>``

Refusals (pod or container not found, container not running, port not exposed) are answered
as a ``Status`` with a 4xx code before anything is upgraded, so the API server can refuse the
client's WebSocket upgrade with the same words. Otherwise the agent answers ``101 Switching
Protocols`` and the connection carries:

* for exec and attach, **frames** both ways: one byte channel, four bytes big-endian length,
  the payload. Channels are those of ``v5.channel.k8s.io``: 0 stdin, 1 stdout, 2 stderr,
  3 error (a ``Status``, sent once at the end: ``Success``, or ``NonZeroExitCode`` with an
  ``ExitCode`` cause), 4 resize (``{"Width":..,"Height":..}``) and 255 close (its one-byte
  payload names the channel the client closed: 0 is end of stdin). The API server turns
  WebSocket messages into frames and back (``channel byte + payload`` both), so the framing
  only restores the message boundaries the byte stream loses.
* for port-forward, the raw bytes of one TCP connection to ``127.0.0.1:<host port>`` (the host
  port the runtime mapped for that ``containerPort``, see ``berth.dev/HostPorts``).

exec runs the command as the container's process runs (same environment, working directory
and volume paths, ``ContainerRun.prepare``), with pipes, or with a pseudo-terminal when
``tty=true`` (resize messages set its window size). A program that cannot be started ends
with exit code 127 (not found) or 126 (not executable), as a shell would report it. When the
API server hangs up, the command's process group is killed. attach joins the running
process: its output is copied to the client beside the log file (``OutputTee``), and stdin
reaches the process when the container asks for ``stdin: true`` (``stdinOnce`` closes it
after the first client that ends its stdin).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import pty
import signal
import struct
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from clusterapi.nodeagent.runtimes.process import logs

if TYPE_CHECKING:
    from clusterapi.nodeagent.runtimes.process.container import ContainerRun
    from clusterapi.nodeagent.runtimes.process.runtime import ProcessRuntime

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255
HEADER = struct.Struct(">BI")
MAX_FRAME = 1 << 20
READ_SIZE = 32 * 1024
NOT_FOUND_CODE = 127
NOT_EXECUTABLE_CODE = 126
ATTACH_QUEUE = 1024
UPGRADE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: berth-stream\r\nConnection: Upgrade\r\n\r\n"
)

Answer = Callable[[asyncio.StreamWriter, int, str, str], Awaitable[None]]


# --- framing -------------------------------------------------------------------------------


def frame(channel: int, payload: bytes = b"") -> bytes:
    """One frame of the agent connection (see the module docstring)."""
    return HEADER.pack(channel, len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next frame, or None at end of stream."""
    try:
        head = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    channel, length = HEADER.unpack(head)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes is over the limit of {MAX_FRAME}")
    try:
        return channel, await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


def success_status() -> bytes:
    """The error channel's last word for a command that exited 0 (upstream's bytes)."""
    return orjson.dumps({"metadata": {}, "status": "Success"})


def exit_status(code: int, argv: list[str]) -> bytes:
    """The error channel's ``Status`` for a non-zero exit, as the kubelet writes it: kubectl
    reads the ``ExitCode`` cause and exits with it (``command terminated with exit code N``)."""
    return orjson.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": (
                f"command terminated with non-zero exit code: error executing command "
                f"[{' '.join(argv)}], exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    )


def failure_status(message: str) -> bytes:
    """The error channel's ``Status`` for a stream that failed for another reason."""
    return orjson.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        }
    )


def window_size(payload: bytes) -> tuple[int, int] | None:
    """(rows, columns) of a resize message ``{"Width":..,"Height":..}``."""
    try:
        size = orjson.loads(payload)
        return int(size.get("Height") or 0), int(size.get("Width") or 0)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None


# --- options -------------------------------------------------------------------------------


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or [""])[-1].lower() in ("true", "1")


@dataclass(frozen=True)
class Options:
    """What the client asked for (upstream's ``PodExecOptions``/``PodAttachOptions``)."""

    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False
    command: tuple[str, ...] = ()

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> Options:
        tty = _flag(query, "tty")
        return cls(
            stdin=_flag(query, "stdin"),
            stdout=_flag(query, "stdout"),
            # With a terminal, stderr is the terminal too (upstream refuses both).
            stderr=_flag(query, "stderr") and not tty,
            tty=tty,
            command=tuple(query.get("command") or ()),
        )


# --- attach: the main process's output, beside its log file --------------------------------


class OutputTee(logs.LogWriter):
    """A container run's log writer that also hands each line to attached clients."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        super().__init__(path, max_bytes, keep)
        self.subscribers: set[asyncio.Queue[tuple[str, bytes] | None]] = set()

    def write(self, stream: str, text: bytes, partial: bool = False) -> None:
        super().write(stream, text, partial)
        chunk = text if partial else text + b"\n"
        for queue in list(self.subscribers):
            if queue.qsize() >= ATTACH_QUEUE:
                # A client that does not read is dropped rather than buffered without bound.
                self.subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait((stream, chunk))

    def close(self) -> None:
        super().close()
        for queue in list(self.subscribers):
            queue.put_nowait(None)
        self.subscribers.clear()

    def subscribe(self) -> asyncio.Queue[tuple[str, bytes] | None]:
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(None)
        else:
            self.subscribers.add(queue)
        return queue


# --- the endpoint --------------------------------------------------------------------------


async def serve(
    runtime: ProcessRuntime,
    parts: list[str],
    query: dict[str, list[str]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    answer: Answer,
) -> None:
    """Answer ``/exec``, ``/attach`` or ``/portForward`` (``parts``: the unquoted path)."""
    kind = parts[0]
    uid = (query.get("uid") or [""])[-1]
    run = runtime.runs.get(uid)
    if kind == "portForward" and len(parts) == 3:
        if run is None:
            await answer(writer, 404, "NotFound", f'pod not found ("{parts[2]}_{parts[1]}")')
            return
        await _port_forward(run.containers(), query, reader, writer, answer)
        return
    if len(parts) != 4:
        await answer(writer, 404, "NotFound", "the server could not find the requested resource")
        return
    _, namespace, pod, name = parts
    container = run.container(name) if run is not None else None
    if run is None or container is None:
        await answer(writer, 404, "NotFound", f'pod not found ("{pod}_{namespace}")')
        return
    if not container.running or container.process is None:
        await answer(writer, 400, "BadRequest", f'container not found ("{name}")')
        return
    options = Options.from_query(query)
    if kind == "exec":
        if not options.command:
            await answer(writer, 400, "BadRequest", "you must specify at least 1 command")
            return
        writer.write(UPGRADE)
        await writer.drain()
        await Exec(container, options, reader, writer).run()
    else:
        writer.write(UPGRADE)
        await writer.drain()
        await attach(container, options, reader, writer)


# --- exec ----------------------------------------------------------------------------------


@dataclass
class Exec:
    """One ``exec`` session (see the module docstring)."""

    container: ContainerRun
    options: Options
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    process: asyncio.subprocess.Process | None = None
    master: int = -1
    _output: list[asyncio.Task[None]] = field(default_factory=list)

    def send(self, channel: int, payload: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(channel, payload))

    async def run(self) -> None:
        prepared = self.container._prepared
        assert prepared is not None  # set before the process starts, which serve() checked
        argv = [prepared.mounts.rewrite(part) for part in self.options.command]
        try:
            # In the container's mount namespace where it has one (its service-account
            # token at the standard path); a missing program fails here all the same.
            await self._start(self.container.enter(argv, prepared), prepared.env, prepared.cwd)
        except OSError as exc:
            code = NOT_FOUND_CODE if exc.errno == errno.ENOENT else NOT_EXECUTABLE_CODE
            why = "executable file not found in $PATH" if code == NOT_FOUND_CODE else exc.strerror
            message = f'exec: "{argv[0]}": {why}\r\n' if self.options.tty else None
            text = message or f'exec: "{argv[0]}": {why}\n'
            self.send(STDOUT if self.options.tty else STDERR, text.encode())
            self.send(ERROR, exit_status(code, list(self.options.command)))
            await self.writer.drain()
            return
        assert self.process is not None
        feeding = asyncio.create_task(self._feed())
        waiting = asyncio.create_task(self.process.wait())
        try:
            await asyncio.wait((feeding, waiting), return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                # The client went away first: so does its command.
                self._kill()
                await waiting
            code = waiting.result()
            # Output ends when every holder of the pipes (or the terminal) is gone: a child
            # left in the background must not hold the session open for ever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._output), 2.0 if self.master >= 0 else 10.0
                )
            exit_code = 128 - code if code < 0 else code
            self.send(
                ERROR,
                success_status()
                if exit_code == 0
                else exit_status(exit_code, list(self.options.command)),
            )
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()
        finally:
            feeding.cancel()
            for task in self._output:
                task.cancel()
            await asyncio.gather(feeding, *self._output, return_exceptions=True)
            self._kill()
            self._close_master()

    async def _start(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        options = self.options
        if options.tty:
            master, slave = pty.openpty()
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=cwd,
                    env={"TERM": "xterm", **env},
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    start_new_session=True,
                    preexec_fn=_take_terminal,
                )
            except OSError:
                os.close(master)
                raise
            finally:
                os.close(slave)
            self.master = master
            os.set_blocking(master, False)
            self._output.append(asyncio.create_task(self._pump_terminal()))
            return
        pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=pipe if options.stdin else devnull,
            stdout=pipe if options.stdout else devnull,
            stderr=pipe if options.stderr else devnull,
            start_new_session=True,
        )
        if self.process.stdout is not None:
            self._output.append(asyncio.create_task(self._pump(self.process.stdout, STDOUT)))
        if self.process.stderr is not None:
            self._output.append(asyncio.create_task(self._pump(self.process.stderr, STDERR)))

    async def _pump(self, stream: asyncio.StreamReader, channel: int) -> None:
        while chunk := await stream.read(READ_SIZE):
            self.send(channel, chunk)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    async def _pump_terminal(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ready = loop.create_future()
            loop.add_reader(self.master, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_reader(self.master)
            try:
                chunk = os.read(self.master, READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                return  # EIO: the other side is closed
            if not chunk:
                return
            self.send(STDOUT, chunk)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    async def _feed(self) -> None:
        """Client frames into the process until the client hangs up."""
        process = self.process
        assert process is not None
        while (item := await read_frame(self.reader)) is not None:
            channel, payload = item
            if channel == STDIN and payload:
                if self.master >= 0:
                    await _write_terminal(self.master, payload)
                elif process.stdin is not None and not process.stdin.is_closing():
                    process.stdin.write(payload)
                    with contextlib.suppress(ConnectionError):
                        await process.stdin.drain()
            elif channel == RESIZE and self.master >= 0:
                size = window_size(payload)
                if size is not None:
                    set_window(self.master, *size)
            elif channel == CLOSE and payload[:1] == bytes([STDIN]):
                if self.master >= 0:
                    await _write_terminal(self.master, b"\x04")  # end of input, as ^D
                elif process.stdin is not None:
                    process.stdin.close()

    def _kill(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    def _close_master(self) -> None:
        if self.master >= 0:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = -1


def _take_terminal() -> None:
    """In the child, after ``setsid``: make its stdin (the pty) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_window(fd: int, rows: int, columns: int) -> None:
    """Set a terminal's window size (the foreground process gets SIGWINCH)."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


async def _write_terminal(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        except OSError:
            return
        data = data[written:]


# --- attach --------------------------------------------------------------------------------


async def attach(
    container: ContainerRun,
    options: Options,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Join the container's running process until it exits or the client leaves."""
    process = container.process
    output = container.output
    queue = output.subscribe() if output is not None else None

    async def copy_out() -> None:
        while queue is not None and (item := await queue.get()) is not None:
            stream, chunk = item
            if stream == "stdout" and options.stdout:
                writer.write(frame(STDOUT, chunk))
            elif stream == "stderr" and (options.stderr or (options.tty and options.stdout)):
                writer.write(frame(STDERR if options.stderr else STDOUT, chunk))
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def copy_in() -> None:
        stdin = process.stdin if process is not None else None
        while (item := await read_frame(reader)) is not None:
            channel, payload = item
            if stdin is None or not options.stdin or stdin.is_closing():
                continue
            if channel == STDIN and payload:
                stdin.write(payload)
                with contextlib.suppress(ConnectionError):
                    await stdin.drain()
            elif (
                channel == CLOSE
                and payload[:1] == bytes([STDIN])
                and container.spec.get("stdinOnce")
            ):
                stdin.close()

    tasks = [asyncio.create_task(copy_out()), asyncio.create_task(copy_in())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if not tasks[1].done():
            # The process ended: tell the client (the kubelet ends attach with Success).
            writer.write(frame(ERROR, success_status()))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
    finally:
        if output is not None and queue is not None:
            output.subscribers.discard(queue)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- port-forward --------------------------------------------------------------------------


def host_port(containers: list[ContainerRun], port: int) -> int | None:
    """The host port the runtime mapped for ``containerPort`` ``port``."""
    for run in containers:
        if port in run.by_number:
            return run.by_number[port]
    return None


async def _port_forward(
    containers: list[ContainerRun],
    query: dict[str, list[str]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    answer: Answer,
) -> None:
    text = (query.get("port") or [""])[-1]
    port = int(text) if text.isdigit() else 0
    if not 0 < port < 65536:
        await answer(writer, 400, "BadRequest", f"invalid port {text!r}")
        return
    # A port the pod does not declare is still reached as upstream does (pods share the
    # host's network here): the process listens on the host port it was given, or on the
    # port itself.
    target = host_port(containers, port) or port
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError as exc:
        await answer(
            writer,
            502,
            "BadGateway",
            f"error forwarding port {port} to pod: failed to connect to localhost:{port} "
            f"(host port {target}): {exc.strerror or exc}",
        )
        return
    writer.write(UPGRADE)
    await writer.drain()
    await splice(reader, writer, upstream_reader, upstream_writer)


async def splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until both directions end (half-closes are passed on)."""

    async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(READ_SIZE):
                sink.write(chunk)
                await sink.drain()
            if sink.can_write_eof() and not sink.is_closing():
                sink.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            pass  # RuntimeError: uvloop's answer to writing on a transport closed meanwhile

    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(copy(a_reader, b_writer)),
        asyncio.create_task(copy(b_reader, a_writer)),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        b_writer.close()
        with contextlib.suppress(Exception):
            await b_writer.wait_closed()
