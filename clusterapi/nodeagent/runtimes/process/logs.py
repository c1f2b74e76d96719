"""Container log files: written as the CRI logging format, read back for ``pods/log``.

Layout: ``<data dir>/pods/<pod uid>/logs/<container>/<restartCount>.log``, one file per run
of a container, so the previous run (``--previous``) is the file numbered one lower. Each line
is ``<RFC3339Nano time> <stdout|stderr> <F|P> <text>``, as the kubelet writes them: ``P``
marks a partial line (a line longer than ``MAX_LINE`` split in pieces, or the unterminated
tail a process left when it exited), ``F`` a full one.

Rotation is by size: once the current file passes ``max_bytes`` it is renamed ``.log.1``
(older ones shift to ``.2`` … ``.<keep-1>``, the oldest is dropped) and a new one is opened.
Readers treat ``.log.<keep-1>`` … ``.log.1``, ``.log`` as one stream; a follower holding the
renamed file finishes it, then moves on to the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

MAX_LINE = 16 * 1024
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5
FOLLOW_POLL_SECONDS = 0.1


def rfc3339nano(ns: int | None = None) -> str:
    """``2025-01-02T03:04:05.123456789Z``: nine fixed digits, as the kubelet prints them."""
    ns = time.time_ns() if ns is None else ns
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch of an ``rfc3339nano`` stamp (0.0 when it is not one)."""
    try:
        whole, _, fraction = text.rstrip("Z").partition(".")
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return moment.timestamp() + float(f"0.{fraction or '0'}")
    except ValueError:
        return 0.0


def container_dir(pods_dir: Path, uid: str, container: str) -> Path:
    """Where one container's log files live."""
    return pods_dir / uid / "logs" / container


def log_path(pods_dir: Path, uid: str, container: str, restart: int) -> Path:
    """The (current) file of one run of a container."""
    return container_dir(pods_dir, uid, container) / f"{restart}.log"


def runs(pods_dir: Path, uid: str, container: str) -> list[int]:
    """The runs (restart counts) of a container that left a log, oldest first."""
    found = []
    directory = container_dir(pods_dir, uid, container)
    if directory.is_dir():
        for entry in directory.glob("*.log"):
            with contextlib.suppress(ValueError):
                found.append(int(entry.stem))
    return sorted(found)


class LogWriter:
    """Appends one run's output in the CRI format, rotating by size (thread-unsafe; one
    writer per run, called from the event loop)."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP):
        self.path = path
        self.max_bytes = max_bytes
        self.keep = max(keep, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(path, "ab")  # noqa: SIM115 - closed by close()
        self._size = self._file.tell()
        self.closed = False

    def write(self, stream: str, text: bytes, partial: bool = False) -> None:
        """One line (without its newline) from ``stream`` (``stdout`` or ``stderr``)."""
        tag = b"P" if partial else b"F"
        record = rfc3339nano().encode() + b" " + stream.encode() + b" " + tag + b" " + text + b"\n"
        self._file.write(record)
        self._file.flush()
        self._size += len(record)
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        oldest = self.path.with_name(f"{self.path.name}.{self.keep - 1}")
        if self.keep == 1:
            self.path.unlink(missing_ok=True)
        else:
            oldest.unlink(missing_ok=True)
            for index in range(self.keep - 2, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.rename(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        """Stop writing (the file stays, for ``--previous``)."""
        if not self.closed:
            self.closed = True
            self._file.close()


async def pump(reader: asyncio.StreamReader, stream: str, writer: LogWriter) -> None:
    """Copy a process's pipe into ``writer`` line by line until end of file."""
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                writer.write(stream, exc.partial, partial=True)
            return
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.readexactly(min(exc.consumed, MAX_LINE) or 1)
            writer.write(stream, chunk, partial=True)
            continue
        writer.write(stream, line[:-1])


@dataclass(frozen=True)
class Record:
    """One line of a log file."""

    stamp: str
    stream: str
    partial: bool
    text: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Record | None:
        parts = raw.rstrip(b"\n").split(b" ", 3)
        if len(parts) < 3:
            return None
        text = parts[3] if len(parts) == 4 else b""
        return cls(parts[0].decode(), parts[1].decode(), parts[2] == b"P", text)

    def render(self, timestamps: bool) -> bytes:
        end = b"" if self.partial else b"\n"
        if timestamps:
            return self.stamp.encode() + b" " + self.text + end
        return self.text + end


@dataclass(frozen=True)
class ReadOptions:
    """The query of a ``pods/log`` request, as the agent applies it."""

    follow: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: float | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


def _files(path: Path) -> list[Path]:
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*rotated, path] if path.exists() else rotated


def _records(files: list[Path]) -> Iterator[Record]:
    for name in files:
        try:
            handle = open(name, "rb")  # noqa: SIM115
        except FileNotFoundError:
            continue  # rotated away while we read
        with handle:
            for raw in handle:
                record = Record.parse(raw)
                if record is not None:
                    yield record


async def read(path: Path, options: ReadOptions, live: Callable[[], bool]) -> AsyncIterator[bytes]:
    """The log of one run, filtered as ``options`` ask; with ``follow``, keeps yielding new
    lines while ``live()`` (the run still writes) holds."""
    since = options.since_time
    if options.since_seconds is not None:
        since = time.time() - options.since_seconds
    budget = options.limit_bytes if options.limit_bytes and options.limit_bytes > 0 else None

    def wanted(record: Record) -> bool:
        return since is None or parse_time(record.stamp) >= since

    def limit(chunk: bytes) -> tuple[bytes, bool]:
        nonlocal budget
        if budget is None:
            return chunk, False
        chunk = chunk[:budget]
        budget -= len(chunk)
        return chunk, budget <= 0

    # What is there now: read in one go (tailLines keeps only the last N lines).
    handle: BinaryIO | None = None
    if options.follow and path.exists():
        # Opened first: lines written while we read the rest are then not lost.
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    try:
        lines: Iterator[Record] | deque[Record]
        if handle is not None:
            rotated = _files(path)[:-1]
            records = list(_records(rotated))
            for raw in handle:
                record = Record.parse(raw)
                if record is not None:
                    records.append(record)
            lines = iter(records)
        else:
            lines = _records(_files(path))
        if options.tail_lines is not None:
            lines = deque((r for r in lines if wanted(r)), maxlen=max(options.tail_lines, 0))
        for record in lines:
            if not wanted(record):
                continue
            chunk, done = limit(record.render(options.timestamps))
            yield chunk
            if done:
                return
        if handle is None:
            if not options.follow:
                return
            # Following a run that has not written yet: wait for its file.
            while not path.exists():
                if not live():
                    return
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
            handle = open(path, "rb")  # noqa: SIM115
        inode = os.fstat(handle.fileno()).st_ino
        pending = b""
        finishing = False
        while True:
            data = handle.readline()
            if data:
                pending += data
                if not pending.endswith(b"\n"):
                    continue  # a line still being written
                record = Record.parse(pending)
                pending = b""
                if record is not None and wanted(record):
                    chunk, done = limit(record.render(options.timestamps))
                    yield chunk
                    if done:
                        return
                continue
            try:
                moved = os.stat(path).st_ino != inode
            except FileNotFoundError:
                moved = False
            if moved:
                # Our file was renamed to .1 and fully read: go on with the new one.
                handle.close()
                handle = open(path, "rb")  # noqa: SIM115
                inode = os.fstat(handle.fileno()).st_ino
                continue
            if finishing:
                return
            if not live():
                # The run ended: one more pass drains what it wrote just before.
                finishing = True
                continue
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    finally:
        if handle is not None:
            handle.close()
