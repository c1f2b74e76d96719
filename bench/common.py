"""What the benchmark scripts in ``bench/`` share, so each figure is measured the same way.

The scripts (``api.py``, ``nodeagent.py``, ``workloads.py``, ``scheduler.py``) run as
``python bench/X.py``: Python puts ``bench/`` first on ``sys.path``, so they ``import common``
(mypy, run as ``mypy bench``, finds it the same way: ``bench/`` is not a package). This
module holds the pieces that used to be copied between them:

* the repository root (``ROOT``), which the scripts put on ``sys.path`` to import
  ``tests.live``, and the stderr progress log (``logger``);
* the machine: its description for a report, its load average, the CPU seconds it spent
  busy, and the wait for other programs to leave the cores idle before a run;
* CPU accounting of process trees from ``/proc``: a process's own CPU seconds and those of
  its descendants, running ones and reaped ones (counted in their parents' cutime/cstime);
* nearest-rank percentiles and a percentile spread;
* the keep-alive HTTPS/1.1 client of the live server (``http.client``, one connection,
  reopened when the server closes it), a watch stream on that connection and its events,
  and the status of an object's condition;
* py-spy: the ``--profile`` directory, sampling a process while a block runs, and tallying
  the collapsed stacks it writes;
* removing a run's data directory (the server's helpers may write a last file as they exit);
* the options the scripts share (``--postgres-url``, ``--quiet-wait``), the database
  choice, the report's date and command line, and printing the report (text or JSON).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import http.client
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
JSON_BODY = {"Content-Type": "application/json"}

Log = Callable[[str], None]


def logger(name: str) -> Log:
    """A function printing ``[name HH:MM:SS] message`` lines to stderr (progress, not output)."""

    def log(message: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


# --- the run ----------------------------------------------------------------------------------


def report_date() -> str:
    """Now, in UTC, as the reports print it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line(script: str) -> str:
    """The command that ran ``script`` (its path relative to the repository root)."""
    return "python " + " ".join([os.path.relpath(script, ROOT), *sys.argv[1:]])


def add_postgres_url(parser: argparse.ArgumentParser) -> None:
    """The ``--postgres-url`` option (with ``--database postgres``)."""
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="base URL; a fresh database is created beside it for the run",
    )


def add_quiet_wait(parser: argparse.ArgumentParser, default: float) -> None:
    """The ``--quiet-wait`` option: the limit of ``wait_for_quiet`` before the run."""
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=default,
        help="wait up to this many seconds for other programs to leave the cores idle",
    )


def print_report(
    report: dict[str, Any], output: str, render: Callable[[dict[str, Any]], str]
) -> None:
    """Print the report as indented JSON (``--output json``) or as ``render`` makes it."""
    if output == "json":
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(report))


def select_database(database: str, postgres_url: str) -> None:
    """Point the live server at PostgreSQL (``postgres_url``, the base beside which
    ``tests/live.py`` creates a fresh database) or at its embedded SQLite."""
    if database == "postgres":
        os.environ["DATABASE_URL"] = postgres_url
    else:
        os.environ.pop("DATABASE_URL", None)


def remove_tree(directory: Path, log: Log) -> None:
    """Remove a run's data directory; the server's helpers may write a last file while exiting."""
    for _attempt in range(10):
        shutil.rmtree(directory, ignore_errors=True)
        if not directory.exists():
            return
        time.sleep(0.5)
    log(f"could not remove {directory}")


# --- the machine ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, kernel and Python version."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024 / 1024
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``1.0 / 0.8 / 0.5``."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle, summed over cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def background_load(seconds: float = 2.0) -> float:
    """Cores the machine keeps busy over ``seconds`` (before the benchmark's own load)."""
    start = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - start) / seconds


def wait_for_quiet(limit: float, log: Log, threshold: float = 0.3) -> float:
    """Wait (at most ``limit`` seconds) for other programs to leave the cores idle; returns
    the last background load seen, in cores."""
    deadline = time.monotonic() + limit
    load = background_load()
    while load > threshold and time.monotonic() < deadline:
        log(f"machine busy with {load:.2f} cores of other work; waiting")
        time.sleep(3.0)
        load = background_load()
    return load


# --- CPU of process trees ---------------------------------------------------------------------


def process_table() -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """pid → parent pid, and pid → (own CPU ticks, reaped children's ticks), from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, tuple[int, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    return parents, times


def tree_cpu(roots: Iterable[int]) -> dict[int, tuple[float, float]]:
    """Per root pid: CPU seconds of the process itself, and of its descendants (running ones
    and those already reaped, counted in their parents' cutime/cstime). One /proc scan."""
    parents, times = process_table()
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[float, float]] = {}
    for root in roots:
        own, reaped = times.get(root, (0, 0))
        descendants = reaped
        for pid, used in times.items():
            if pid == root:
                continue
            ancestor = parents.get(pid, 0)
            while ancestor > 1 and ancestor != root:
                ancestor = parents.get(ancestor, 0)
            if ancestor == root:
                descendants += sum(used)
        out[root] = (own / tick, descendants / tick)
    return out


def tree_cpu_seconds(root: int) -> tuple[float, float]:
    """CPU seconds of process ``root`` itself, and of its descendants (see ``tree_cpu``)."""
    return tree_cpu([root])[root]


# --- statistics -------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def spread(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """count, p50, p90, p99, max and mean of ``values`` (times ``scale``)."""
    return {
        "count": len(values),
        "p50": percentile(values, 50) * scale,
        "p90": percentile(values, 90) * scale,
        "p99": percentile(values, 99) * scale,
        "max": max(values, default=0.0) * scale,
        "mean": (sum(values) / len(values) * scale) if values else 0.0,
    }


# --- the HTTP client --------------------------------------------------------------------------


class Client:
    """One keep-alive HTTPS/1.1 connection (http.client), reopened if the server closes it."""

    def __init__(
        self, port: int, context: ssl.SSLContext, token: str, timeout: float = 60.0
    ) -> None:
        self.port = port
        self.context = context
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=self.timeout
        )
        conn.connect()
        return conn

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Status and body of one request. A ``bytes`` body is sent as it is (``headers``
        name its type); any other body but None is sent as JSON."""
        merged = {**self.headers, **(headers or {})}
        data: bytes | None
        if body is None or isinstance(body, bytes):
            data = body
        else:
            data = orjson.dumps(body)
            merged.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=merged)
                response = self.conn.getresponse()
                payload = response.read()
                if response.will_close:
                    self.conn.close()
                    self.conn = self._connect()
                return response.status, payload
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                self.conn.close()
                self.conn = self._connect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        """The decoded JSON of a GET that must answer 200."""
        status, payload = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {payload[:300]!r}")
        return orjson.loads(payload)

    def watch(self, path: str) -> http.client.HTTPResponse:
        """Open a streaming GET (a ``?watch=true`` path) on this connection; read its lines
        from the response, and ``interrupt()`` to stop a reader blocked in one."""
        self.conn.request("GET", path, headers=self.headers)
        stream = self.conn.getresponse()
        if stream.status != 200:
            raise RuntimeError(f"watch: {stream.status} {stream.read()[:300]!r}")
        return stream

    def interrupt(self) -> None:
        """Shut the socket down, so a thread blocked reading from it returns (closing the
        response while it sits in readline() would wait for that read to finish)."""
        with contextlib.suppress(OSError):
            self.conn.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.conn.close()


def watch_events(
    stream: http.client.HTTPResponse, stop: threading.Event
) -> Iterator[tuple[float, dict[str, Any]]]:
    """The events of a watch stream (``Client.watch``), each with the ``time.perf_counter()``
    of its arrival, until the stream ends, a read fails (``Client.interrupt``) or ``stop`` is
    set."""
    while not stop.is_set():
        try:
            line = stream.readline()
        except (OSError, ValueError, http.client.HTTPException):
            return
        now = time.perf_counter()
        if not line:
            return
        if line.strip():
            yield now, orjson.loads(line)


def condition_status(obj: dict[str, Any], kind: str = "Ready") -> str:
    """The status of an object's condition of type ``kind`` ("" without one)."""
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == kind:
            return str(condition.get("status") or "")
    return ""


# --- profiling with py-spy --------------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy executable: on PATH, or beside this Python (a virtualenv's bin/)."""
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


def profile_directory(option: str | None) -> Path | None:
    """The ``--profile DIR`` directory, created (None without the option); exits when py-spy
    is missing."""
    if not option:
        return None
    if py_spy() is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    directory = Path(option).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class Profiler:
    """py-spy sampling a process while a block runs, into ``DIR/NAME.txt`` (collapsed stacks);
    without a directory it does nothing."""

    def __init__(
        self,
        directory: Path | None,
        *,
        rate: int,
        options: Sequence[str] = (),
        stop_timeout: float = 30.0,
    ) -> None:
        self.directory = directory
        self.rate = rate
        self.options = tuple(options)
        self.stop_timeout = stop_timeout

    @contextlib.contextmanager
    def sample(self, pid: int, name: str) -> Iterator[None]:
        if self.directory is None:
            yield
            return
        process = subprocess.Popen(
            [
                py_spy() or "py-spy",
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--nonblocking",
                *self.options,
                "--output",
                str(self.directory / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # let py-spy attach before the load starts
        try:
            yield
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class StackTally:
    """The samples of one profile: in all, per function anywhere on the stack (inclusive), at
    its top (``own``, i.e. self) and, when a bucket function is given, per bucket."""

    samples: int = 0
    inclusive: collections.Counter[str] = field(default_factory=collections.Counter)
    own: collections.Counter[str] = field(default_factory=collections.Counter)
    buckets: collections.Counter[str] = field(default_factory=collections.Counter)

    def shares(self, counts: Iterable[tuple[str, int]]) -> list[tuple[str, float]]:
        """``(name, count)`` pairs as ``(name, percent of the samples)``, to 0.1."""
        return [(name, round(100 * count / self.samples, 1)) for name, count in counts]


def tally_profiles(
    directory: Path, bucket: Callable[[list[str]], str] | None = None
) -> Iterator[tuple[str, StackTally]]:
    """Per profile in ``directory`` (``*.txt``, py-spy's raw collapsed stacks; not
    ``summary.txt``), in name order: its name and its tally. ``NAME@PART.txt`` files are the
    parts of one profile NAME (a phase measured in slices) and are tallied together.
    Profiles without samples are left out."""
    parts: dict[str, list[Path]] = collections.defaultdict(list)
    for path in sorted(directory.glob("*.txt")):
        if path.name != "summary.txt":
            parts[path.stem.partition("@")[0]].append(path)
    for name, paths in sorted(parts.items()):
        tally = StackTally()
        for path in paths:
            _tally_file(path, tally, bucket)
        if tally.samples:
            yield name, tally


def _tally_file(path: Path, tally: StackTally, bucket: Callable[[list[str]], str] | None) -> None:
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [name for name in map(frame_name, stack.split(";")) if name]
        if not frames:
            continue
        tally.samples += count
        for frame in set(frames):
            tally.inclusive[frame] += count
        tally.own[frames[-1]] += count
        if bucket is not None:
            tally.buckets[bucket(frames)] += count


def frame_name(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module path relative to site-packages)``."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{name} ({file})" if file else name
