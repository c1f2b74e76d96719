"""The API benchmark: one live Berth server, every figure measured against its reference.

    python bench/api.py [--database sqlite|postgres] [--output text|json] [--profile DIR]

Starts ONE ``manage.py up`` (``tests/live.py``: its own data directory, a free loopback
port, a fresh database on PostgreSQL) with ``BERTH_BENCH=1``, which routes the reference view
``/_bench/empty`` (plain synchronous Django returning ``JsonResponse({})``), then measures in
this order, all on that server:

1. the empty view: the maximum request rate (closed loop, ``--clients`` keep-alive HTTPS
   connections, one thread each);
2. pod creates per second (closed loop, same clients); 1 and 2 alternate in ``--rounds``
   slices of ``--duration / --rounds`` seconds each (the created pods deleted after each
   slice), so that the machine's drifting speed weighs on both alike;
3. the creation of ``--pods`` pods in one namespace through the API in parallel (timed);
4. single-pod GETs: the maximum rate (closed loop), then p50/p99 of GETs and of the empty
   view at ``--rate`` requests per second (open loop; lowered to half the slower maximum,
   and said so, when ``--rate`` is above 60% of it: an open loop past capacity only
   measures a growing queue);
5. one LIST of those pods, as JSON and as a Table (wall time of one request, best and median
   of ``--list-repeats``);
6. watch latency: a watch stream open from a known resourceVersion while a writer patches pods
   at ``--watch-rate``; latency = arrival of the event line minus the instant just before the
   write request was sent; the write's own round trip is reported beside it;
7. the database's raw single-row commit rate: INSERT + COMMIT in a loop, from a separate
   connection, on a scratch table in the same database (SQLite file with the server's pragmas,
   or the same PostgreSQL database).

Each phase also records the CPU used by the client (this process), by the API process, by
the helpers ``up`` starts beside it (Celery worker and beat), by PostgreSQL and by the rest of
the machine, so a reader can check the client was not the bottleneck. With
``--profile DIR`` py-spy samples the server during the main phases and a summary of the hot
functions is written to DIR (figures from a profiled run are lower: py-spy takes CPU too).

Every loop is bounded in count and time; the script stops the server and exits by itself.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sqlite3
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from common import (
    JSON_BODY,
    ROOT,
    Client,
    Profiler,
    add_postgres_url,
    add_quiet_wait,
    command_line,
    logger,
    machine,
    machine_busy_seconds,
    percentile,
    print_report,
    profile_directory,
    remove_tree,
    report_date,
    select_database,
    tally_profiles,
    tree_cpu_seconds,
    wait_for_quiet,
    watch_events,
)

sys.path.insert(0, str(ROOT))

from tests.live import LiveServer, celery_worker_pid  # needs ROOT on sys.path (above)

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
PHASE_CAP_SECONDS = 900.0  # no phase runs longer than this, whatever the figures
GOALS = {
    "creates_vs_empty": 0.40,
    "gets_vs_empty": 0.70,
    "list_seconds": 1.0,
    "watch_p99_ms": 100.0,
}

_log = logger("bench")


# --- measuring CPU ----------------------------------------------------------------------------


def postmaster_pid(url: str) -> int:
    """The pid of the postmaster serving ``url`` (from postmaster.pid in its data dir)."""
    import psycopg

    with psycopg.connect(url) as conn:
        data_dir = str(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
    return int((Path(data_dir) / "postmaster.pid").read_text().split()[0])


@dataclass
class CpuUse:
    """CPU used during a phase, in cores (1.0 = one core busy for the whole phase).

    ``server`` is the API process (uvicorn); ``helpers`` the processes ``manage.py up``
    starts beside it (Celery worker and beat: the control loops woken by every write);
    ``database`` is PostgreSQL's processes (SQLite runs inside the server); ``other`` is the
    rest of the machine (other programs), which competes with the server for the cores."""

    client: float = 0.0
    server: float = 0.0
    helpers: float = 0.0
    database: float = 0.0
    other: float = 0.0
    server_seconds: float = 0.0
    helpers_seconds: float = 0.0


class CpuMeter:
    """Brackets a phase: CPU of this process, the server, PostgreSQL and the machine."""

    def __init__(self, server_pid: int, postmaster: int | None) -> None:
        self.server_pid = server_pid
        self.postmaster = postmaster

    def _database(self) -> float:
        return sum(tree_cpu_seconds(self.postmaster)) if self.postmaster else 0.0

    @contextlib.contextmanager
    def measure(self) -> Iterator[CpuUse]:
        use = CpuUse()
        wall0 = time.perf_counter()
        client0 = time.process_time()
        server0, helpers0 = tree_cpu_seconds(self.server_pid)
        database0 = self._database()
        machine0 = machine_busy_seconds()
        try:
            yield use
        finally:
            wall = max(time.perf_counter() - wall0, 1e-9)
            use.client = (time.process_time() - client0) / wall
            server1, helpers1 = tree_cpu_seconds(self.server_pid)
            use.server_seconds = server1 - server0
            use.server = use.server_seconds / wall
            use.helpers_seconds = helpers1 - helpers0
            use.helpers = use.helpers_seconds / wall
            use.database = (self._database() - database0) / wall
            busy = (machine_busy_seconds() - machine0) / wall
            use.other = max(busy - use.client - use.server - use.helpers - use.database, 0.0)


def renice(pid: int, nice: int) -> None:
    """Set the nice value of every thread of ``pid`` (threads it starts later inherit it),
    and of its scheduler autogroup: with autogroups on, the kernel shares the cores between
    sessions first, so a thread's own nice value counts only inside its session."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


# --- load phases ------------------------------------------------------------------------------


Request = Callable[[Client, int], tuple[int, bytes]]


@dataclass
class LoadResult:
    """What one load phase did."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    late: int = 0
    cpu: CpuUse = field(default_factory=CpuUse)
    first_error: str = ""
    # Kept to merge slices (``merge_results``); left out of the report.
    latencies: list[float] = field(default_factory=list, repr=False)


def merge_results(parts: list[LoadResult]) -> LoadResult:
    """One result for a phase measured in slices: counts, time and CPU add up, percentiles
    come from the pooled latencies."""
    latencies = [x for part in parts for x in part.latencies]
    seconds = sum(part.seconds for part in parts)
    requests = sum(part.requests for part in parts)
    errors = sum(part.errors for part in parts)

    def cores(attribute: str) -> float:
        # Each slice's figure is a share of its own wall time: weight by it.
        return sum(getattr(p.cpu, attribute) * p.seconds for p in parts) / max(seconds, 1e-9)

    cpu = CpuUse(
        **{name: cores(name) for name in ("client", "server", "helpers", "database", "other")},
        server_seconds=sum(p.cpu.server_seconds for p in parts),
        helpers_seconds=sum(p.cpu.helpers_seconds for p in parts),
    )
    return LoadResult(
        requests=requests,
        errors=errors,
        seconds=seconds,
        rate=(requests - errors) / seconds if seconds else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
        late=sum(p.late for p in parts),
        cpu=cpu,
        first_error=next((p.first_error for p in parts if p.first_error), ""),
        latencies=latencies,
    )


@dataclass
class Rounds:
    """The per-slice rates of the phases run in alternating rounds."""

    empty: list[float]
    creates: list[float]


class Bench:
    """The clients and the phases, bound to one live server."""

    def __init__(self, server: LiveServer, clients: int, profile_dir: Path | None) -> None:
        self.server = server
        self.clients = clients
        assert server.process is not None
        self.pid = server.process.pid
        url = server.env.get("DATABASE_URL", "")
        self.meter = CpuMeter(self.pid, postmaster_pid(url) if url.startswith("postgres") else None)
        self.token = server.admin_token()
        self.context = ssl.create_default_context(cafile=str(server.ca_file))
        # --gil: sample the thread holding the interpreter lock, which is what one server
        # process is short of; waiting threads are not counted.
        self.profiler = Profiler(profile_dir, rate=200, options=("--gil",), stop_timeout=30)
        self.settled: dict[str, float] = {}

    def client(self) -> Client:
        return Client(self.server.port, self.context, self.token, timeout=120)

    def settle(self, phase: str, limit: float = 120.0, idle: float = 0.05) -> float:
        """Wait until the control loops have worked off what earlier phases gave them.

        Every create wakes the Celery worker (the scheduler tries each new pod), so after
        thousands of creates it stays busy for a while. A phase measured meanwhile would
        share the cores with that backlog; each phase starts once the worker and beat have
        used under ``idle`` cores for a second (at most ``limit`` seconds). Returns the wait.
        """
        start = time.monotonic()
        while time.monotonic() - start < limit:
            before = tree_cpu_seconds(self.pid)[1]
            time.sleep(1.0)
            if tree_cpu_seconds(self.pid)[1] - before < idle:
                break
        waited = time.monotonic() - start
        self.settled[phase] = round(waited, 1)
        if waited > 2:
            _log(f"{phase}: waited {waited:.0f}s for the control loops to go idle")
        return waited

    # --- profiling ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def profiled(self, phase: str, *, worker: bool = False) -> Iterator[None]:
        """Sample the server with py-spy during the block, when --profile is on; with
        ``worker``, the Celery worker too (into ``PHASE.worker``), for phases where the control
        loops compete with the API. ``PHASE@N`` is part N of a phase run in slices."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.profiler.sample(self.pid, phase))
            if worker and self.profiler.directory is not None:
                worker_pid = celery_worker_pid(self.server)
                base, at, part = phase.partition("@")
                stack.enter_context(self.profiler.sample(worker_pid, f"{base}.worker{at}{part}"))
            yield

    # --- load loops ---------------------------------------------------------------------------

    def closed_loop(
        self, request: Request, *, count: int | None = None, seconds: float | None = None
    ) -> LoadResult:
        """``self.clients`` threads each send back-to-back requests until the count or the
        time runs out (and never past PHASE_CAP_SECONDS)."""
        budget = min(seconds or PHASE_CAP_SECONDS, PHASE_CAP_SECONDS)
        limit = count if count is not None else sys.maxsize
        counter = itertools.count()
        latencies: list[float] = []
        errors: list[str] = []
        clients = [self.client() for _ in range(self.clients)]
        result = LoadResult()

        with self.meter.measure() as cpu:
            start = time.perf_counter()
            deadline = start + budget

            def worker(client: Client) -> None:
                mine: list[float] = []
                while True:
                    i = next(counter)
                    if i >= limit or time.perf_counter() >= deadline:
                        break
                    t0 = time.perf_counter()
                    try:
                        status, body = request(client, i)
                    except Exception as exc:  # count it, keep going
                        errors.append(repr(exc))
                        continue
                    mine.append(time.perf_counter() - t0)
                    if status >= 300:
                        errors.append(f"{status} {body[:200]!r}")
                latencies.extend(mine)

            threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
        for c in clients:
            c.close()
        result.requests = len(latencies)
        result.errors = len(errors)
        result.first_error = errors[0] if errors else ""
        result.seconds = elapsed
        result.rate = (len(latencies) - len(errors)) / elapsed if elapsed else 0.0
        result.p50_ms = percentile(latencies, 50) * 1000
        result.p99_ms = percentile(latencies, 99) * 1000
        result.max_ms = max(latencies, default=0.0) * 1000
        result.cpu = cpu
        result.latencies = latencies
        return result

    def open_loop(self, request: Request, *, rate: float, seconds: float) -> LoadResult:
        """Requests scheduled at a fixed rate, whatever the answers' pace; latency counts from
        the scheduled instant (a late send adds its delay), so queueing is not hidden."""
        total = int(rate * seconds)
        counter = itertools.count()
        latencies: list[float] = []
        errors: list[str] = []
        late = [0]
        clients = [self.client() for _ in range(self.clients)]
        result = LoadResult()
        with self.meter.measure() as cpu:
            start = time.perf_counter() + 0.05

            def worker(client: Client) -> None:
                mine: list[float] = []
                while True:
                    i = next(counter)
                    if i >= total:
                        break
                    due = start + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    elif delay < -0.001:
                        late[0] += 1
                    try:
                        status, body = request(client, i)
                    except Exception as exc:  # count it, keep going
                        errors.append(repr(exc))
                        continue
                    mine.append(time.perf_counter() - due)
                    if status >= 300:
                        errors.append(f"{status} {body[:200]!r}")
                latencies.extend(mine)

            threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
        for c in clients:
            c.close()
        result.requests = len(latencies)
        result.errors = len(errors)
        result.first_error = errors[0] if errors else ""
        result.seconds = elapsed
        result.rate = len(latencies) / elapsed if elapsed else 0.0
        result.p50_ms = percentile(latencies, 50) * 1000
        result.p99_ms = percentile(latencies, 99) * 1000
        result.max_ms = max(latencies, default=0.0) * 1000
        result.late = late[0]
        result.cpu = cpu
        result.latencies = latencies
        return result


# --- requests ---------------------------------------------------------------------------------


# The 10,000 pods the GET and LIST phases read are addressed to a scheduler that does not
# exist, as pods of a cluster's other schedulers are: Berth's scheduler leaves them alone.
# Otherwise each would cost the control loops a scheduling attempt, a FailedScheduling event
# and a status write (there are no nodes), minutes of work competing with the phases that
# follow. The creates phase uses ordinary pods, so its figure includes the loops' reaction.
FILL_SCHEDULER = "bench-unscheduled"


def pod_body(name: str, scheduler: str = "") -> bytes:
    """A small pod, as a client would send it."""
    spec: dict[str, Any] = {"schedulerName": scheduler} if scheduler else {}
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
            "spec": {
                **spec,
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}],
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }
                ],
            },
        }
    )


def create_pod(namespace: str, prefix: str, scheduler: str = "") -> Request:
    def send(client: Client, i: int) -> tuple[int, bytes]:
        body = pod_body(f"{prefix}{i:05d}", scheduler)
        return client.request("POST", f"/api/v1/namespaces/{namespace}/pods", body, JSON_BODY)

    return send


def get_pod(namespace: str, prefix: str, pods: int) -> Request:
    def send(client: Client, i: int) -> tuple[int, bytes]:
        return client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{prefix}{i % pods:05d}")

    return send


def get_empty(client: Client, i: int) -> tuple[int, bytes]:
    return client.request("GET", "/_bench/empty")


def delete_pods(bench: Bench, namespace: str) -> None:
    client = bench.client()
    try:
        status, body = client.request(
            "DELETE", f"/api/v1/namespaces/{namespace}/pods?gracePeriodSeconds=0"
        )
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"cannot delete the pods of {namespace}: {status} {body[:200]!r}")


def create_namespace(client: Client, name: str) -> None:
    body = orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    status, data = client.request("POST", "/api/v1/namespaces", body, JSON_BODY)
    if status != 201:
        raise RuntimeError(f"creating namespace {name}: {status} {data[:300]!r}")


# --- LIST -------------------------------------------------------------------------------------


@dataclass
class ListResult:
    """Wall times of single LIST requests, and what they returned."""

    best_s: float = 0.0
    median_s: float = 0.0
    times_s: list[float] = field(default_factory=list)
    items: int = 0
    bytes: int = 0
    cpu: CpuUse = field(default_factory=CpuUse)


def measure_list(bench: Bench, namespace: str, accept: str, repeats: int) -> ListResult:
    client = bench.client()
    path = f"/api/v1/namespaces/{namespace}/pods"
    result = ListResult()
    with bench.meter.measure() as cpu:
        for _ in range(repeats):
            start = time.perf_counter()
            status, body = client.request("GET", path, headers={"Accept": accept})
            result.times_s.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"LIST {accept}: {status} {body[:300]!r}")
            result.bytes = len(body)
    parsed = orjson.loads(body)
    result.items = len(parsed.get("items") or parsed.get("rows") or [])
    client.close()
    result.best_s = min(result.times_s)
    result.median_s = percentile(result.times_s, 50)
    result.cpu = cpu
    return result


# --- watch ------------------------------------------------------------------------------------


@dataclass
class WatchResult:
    """Commit-to-client latency of watch events, and the writes' own round trips."""

    writes: int = 0
    events: int = 0
    missing: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    write_p50_ms: float = 0.0
    write_p99_ms: float = 0.0
    cpu: CpuUse = field(default_factory=CpuUse)


def measure_watch(
    bench: Bench, namespace: str, objects: int, rate: float, seconds: float
) -> WatchResult:
    setup = bench.client()
    create_namespace(setup, namespace)
    for i in range(objects):
        status, data = create_pod(namespace, "w-")(setup, i)
        if status != 201:
            raise RuntimeError(f"creating watch pod: {status} {data[:300]!r}")
    status, data = setup.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    rv = orjson.loads(data)["metadata"]["resourceVersion"]

    sent: dict[int, float] = {}
    arrived: dict[int, float] = {}
    round_trips: list[float] = []
    stop = threading.Event()

    watcher = bench.client()
    stream = watcher.watch(
        f"/api/v1/namespaces/{namespace}/pods?watch=true&resourceVersion={rv}"
        f"&timeoutSeconds={int(seconds) + 60}"
    )

    def read_events() -> None:
        for now, event in watch_events(stream, stop):
            annotations = (event["object"].get("metadata") or {}).get("annotations") or {}
            seq = annotations.get("bench/seq")
            if seq is not None:
                arrived.setdefault(int(seq), now)

    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()
    total = int(rate * seconds)
    with bench.meter.measure() as cpu:
        start = time.perf_counter()
        for seq in range(1, total + 1):
            due = start + (seq - 1) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            patch = orjson.dumps({"metadata": {"annotations": {"bench/seq": str(seq)}}})
            path = f"/api/v1/namespaces/{namespace}/pods/w-{seq % objects:05d}"
            t0 = time.perf_counter()
            sent[seq] = t0
            status, data = setup.request(
                "PATCH", path, patch, {"Content-Type": "application/merge-patch+json"}
            )
            round_trips.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"watch writer: {status} {data[:300]!r}")
        settle = time.perf_counter() + 5.0
        while len(arrived) < total and time.perf_counter() < settle:
            time.sleep(0.01)
    stop.set()
    watcher.interrupt()  # unblock the reader before closing
    reader.join(timeout=5)
    watcher.close()
    setup.close()
    latencies = [arrived[s] - sent[s] for s in sent if s in arrived]
    return WatchResult(
        writes=total,
        events=len(latencies),
        missing=total - len(latencies),
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
        write_p50_ms=percentile(round_trips, 50) * 1000,
        write_p99_ms=percentile(round_trips, 99) * 1000,
        cpu=cpu,
    )


# --- the database's raw commit rate -----------------------------------------------------------


@dataclass
class CommitResult:
    """Single-row INSERT + COMMIT transactions per second from one separate connection."""

    commits: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    payload_bytes: int = 0
    settings: str = ""


def raw_commits(server: LiveServer, seconds: float, payload_bytes: int) -> CommitResult:
    payload = "x" * payload_bytes
    url = server.env.get("DATABASE_URL", "")
    result = CommitResult(payload_bytes=payload_bytes)
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url) as conn:
            settings = [
                str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in ("synchronous_commit", "fsync", "wal_sync_method")
            ]
            result.settings = "synchronous_commit={}, fsync={}, wal_sync_method={}".format(
                *settings
            )
            conn.execute("CREATE TABLE bench_scratch (id bigserial PRIMARY KEY, data text)")
            conn.commit()
            start = time.perf_counter()
            deadline = start + seconds
            while time.perf_counter() < deadline:
                conn.execute("INSERT INTO bench_scratch (data) VALUES (%s)", (payload,))
                conn.commit()
                result.commits += 1
            result.seconds = time.perf_counter() - start
            conn.execute("DROP TABLE bench_scratch")
            conn.commit()
    else:
        path = server.data_dir / "berth.sqlite3"
        lite = sqlite3.connect(path, isolation_level=None, timeout=30)
        # The server's journal pragmas (clusterapi/settings.py): WAL, synchronous=NORMAL.
        # Checkpoints are SQLite's default here (in the commit past 1,000 pages); the server
        # runs them beside its writers (clusterapi/store/sqlite).
        lite.execute("PRAGMA journal_mode=WAL")
        lite.execute("PRAGMA synchronous=NORMAL")
        result.settings = (
            "journal_mode=WAL, synchronous=NORMAL (as the server), default checkpoints"
        )
        lite.execute("CREATE TABLE bench_scratch (id INTEGER PRIMARY KEY, data TEXT)")
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            lite.execute("BEGIN IMMEDIATE")
            lite.execute("INSERT INTO bench_scratch (data) VALUES (?)", (payload,))
            lite.execute("COMMIT")
            result.commits += 1
        result.seconds = time.perf_counter() - start
        lite.execute("DROP TABLE bench_scratch")
        lite.close()
    result.rate = result.commits / result.seconds if result.seconds else 0.0
    return result


# --- the run ----------------------------------------------------------------------------------


def database_version(server: LiveServer) -> str:
    url = server.env.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url) as conn:
            return "PostgreSQL " + str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    return "SQLite " + sqlite3.sqlite_version


def run(args: argparse.Namespace) -> dict[str, Any]:
    select_database(args.database, args.postgres_url)
    profile_dir = profile_directory(args.profile)
    report: dict[str, Any] = {
        "date": report_date(),
        "command": command_line(__file__),
        "machine": machine(),
        "settings": {
            "clients": args.clients,
            "rate": args.rate,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "pods": args.pods,
            "watch_rate": args.watch_rate,
            "profiled": profile_dir is not None,
            "nice": args.nice,
            "controllers": args.controllers,
        },
    }
    report["background_load_cores"] = round(wait_for_quiet(args.quiet_wait, _log), 2)
    group_nice = _autogroup_nice()
    if args.nice:
        # This process (the client) and, once started, the server run ahead of other
        # programs on a shared machine; PostgreSQL's backends keep their own priority.
        renice(os.getpid(), args.nice)
    try:
        _run_server(args, report, profile_dir)
    finally:
        if args.nice and group_nice is not None:
            with contextlib.suppress(OSError):
                Path("/proc/self/autogroup").write_text(str(group_nice))
    if profile_dir is not None:
        report["profile"] = summarize_profiles(profile_dir)
    return report


def _autogroup_nice() -> int | None:
    """This session's autogroup nice value, to restore after the run (None if unknown)."""
    try:
        return int(Path("/proc/self/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _run_server(args: argparse.Namespace, report: dict[str, Any], profile_dir: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    env = {"BERTH_BENCH": "1"}
    if not args.controllers:
        env["BERTH_CONTROLLERS"] = "0"  # writes wake no control loop
    server = LiveServer(tmp, env=env)
    try:
        server.start()
        if args.nice:
            assert server.process is not None
            renice(server.process.pid, args.nice)
        report["database"] = database_version(server)
        report.update(_phases(args, Bench(server, args.clients, profile_dir), server))
    finally:
        server.stop()
        remove_tree(tmp, _log)


def _phases(args: argparse.Namespace, bench: Bench, server: LiveServer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    setup = bench.client()
    for ns in ("bench-create", "bench-list"):
        create_namespace(setup, ns)
    status, body = setup.request("GET", "/_bench/empty")
    if status != 200 or body != b"{}":
        raise RuntimeError(f"/_bench/empty is not routed (BERTH_BENCH=1?): {status} {body[:200]!r}")
    # Warm up: the first requests import modules, load schemas and open connections.
    warm = bench.closed_loop(create_pod("bench-create", "warm-"), count=50)
    bench.closed_loop(get_pod("bench-create", "warm-", 50), count=200)
    bench.closed_loop(get_empty, count=200)
    if warm.errors:
        raise RuntimeError(f"warm-up creates failed: {warm.first_error}")
    status, body = setup.request("GET", "/api/v1/namespaces/bench-create/pods/warm-00000")
    pod_bytes = len(body)
    setup.close()

    # The empty view and the creates alternate in rounds of equal slices: the machine's speed
    # drifts (other programs, the host), and a ratio of two rates measured minutes apart
    # carries that drift; slices side by side share it. Each slice starts with the control
    # loops idle, so neither inherits the other's backlog.
    slice_seconds = args.duration / args.rounds
    empties: list[LoadResult] = []
    creates: list[LoadResult] = []
    for round_ in range(args.rounds):
        bench.settle("empty_max")
        _log(f"round {round_ + 1}/{args.rounds}: empty view, closed loop {slice_seconds:g}s")
        with bench.profiled(f"empty@{round_}"):
            empties.append(bench.closed_loop(get_empty, seconds=slice_seconds))
        bench.settle("creates")
        _log(f"round {round_ + 1}/{args.rounds}: creates, closed loop {slice_seconds:g}s")
        with bench.profiled(f"creates@{round_}", worker=True):
            creates.append(
                bench.closed_loop(create_pod("bench-create", f"c{round_}-"), seconds=slice_seconds)
            )
        # The created pods wait for a node that never comes (there are none): the scheduler
        # would keep retrying them through every later slice and phase.
        delete_pods(bench, "bench-create")
    out["empty_max"] = merge_results(empties)
    out["creates"] = merge_results(creates)
    out["rounds"] = Rounds(
        empty=[round(r.rate, 1) for r in empties], creates=[round(r.rate, 1) for r in creates]
    )
    bench.settle("fill")

    _log(f"filling {args.pods} pods")
    out["fill"] = bench.closed_loop(create_pod("bench-list", "p-", FILL_SCHEDULER), count=args.pods)

    bench.settle("get_max")
    _log(f"GET: closed loop {args.duration}s")
    get = get_pod("bench-list", "p-", args.pods)
    with bench.profiled("gets"):
        out["get_max"] = bench.closed_loop(get, seconds=args.duration)

    # An open loop above what the server sustains only measures a growing queue: keep the
    # fixed rate below 60% of the slower of the two maxima, and say so when lowering it.
    capacity = min(out["empty_max"].rate, out["get_max"].rate)
    rate = args.rate
    if rate > 0.6 * capacity:
        rate = max(10.0, (0.5 * capacity) // 10 * 10)
        fixed_note = (
            f"{args.rate:g}/s requested is above 60% of the max GET rate ({capacity:.0f}/s); "
            f"measured at {rate:g}/s"
        )
    else:
        fixed_note = ""
    bench.settle("fixed")
    _log(f"fixed rate: {rate:g}/s for {args.duration}s, empty view then GET")
    out["empty_fixed"] = bench.open_loop(get_empty, rate=rate, seconds=args.duration)
    out["get_fixed"] = bench.open_loop(get, rate=rate, seconds=args.duration)

    bench.settle("list")
    _log("LIST")
    with bench.profiled("list_json"):
        out["list_json"] = measure_list(bench, "bench-list", "application/json", args.list_repeats)
    with bench.profiled("list_table"):
        out["list_table"] = measure_list(bench, "bench-list", TABLE_ACCEPT, args.list_repeats)

    bench.settle("watch")
    _log(f"watch: {args.watch_rate} writes/s for {args.duration}s")
    with bench.profiled("watch"):
        out["watch"] = measure_watch(
            bench, "bench-watch", 20, rate=args.watch_rate, seconds=args.duration
        )

    bench.settle("db_commits")
    _log("raw database commits")
    out["db_commits"] = raw_commits(server, min(args.duration, 5.0), pod_bytes)
    result: dict[str, Any] = {k: asdict(v) for k, v in out.items()}
    for figures in result.values():
        figures.pop("latencies", None)
    result["fixed_rate"] = rate
    result["settled_s"] = bench.settled
    result["fixed_rate_note"] = fixed_note
    return result


# --- py-spy summaries -------------------------------------------------------------------------


# Where a sample's time goes. A sample whose stack passes through one of SPECIFIC goes there
# (first match); otherwise the frame nearest the leaf that matches a LEAFWARD marker decides,
# so time in the standard library is charged to whoever called it.
SPECIFIC: tuple[tuple[str, str], ...] = (
    ("admission: schema validation (clusterapi/admission)", "clusterapi/admission/"),
    ("managedFields (store/apply.py record_update)", "record_update (clusterapi/store/apply.py)"),
    ("namespace check (store/objects.py _check_namespace)", "_check_namespace ("),
    ("Table rendering (api/table.py)", "(clusterapi/api/table.py)"),
    ("watch feed + stream (core/watch.py, api/watching.py)", "(clusterapi/core/watch.py)"),
    ("watch feed + stream (core/watch.py, api/watching.py)", "(clusterapi/api/watching.py)"),
)
LEAFWARD: tuple[tuple[str, str], ...] = (
    ("DB: Django ORM + driver (django/db)", "(django/db/"),
    ("other Berth code (clusterapi/, incl. stdlib it calls)", "(clusterapi/"),
    ("Django handlers + middleware, asgiref sync/async hops", "(django/"),
    ("Django handlers + middleware, asgiref sync/async hops", "(asgiref/"),
    ("thread pools, thread start/stop (concurrent/futures, threading)", "(concurrent/futures/"),
    ("thread pools, thread start/stop (concurrent/futures, threading)", "(threading.py)"),
)
EVENT_LOOP = "uvicorn, TLS, asyncio event loop"


def _bucket(frames: list[str]) -> str:
    for label, marker in SPECIFIC:
        if any(marker in f for f in frames):
            return label
    for frame in reversed(frames):
        for label, marker in LEAFWARD:
            if marker in frame:
                return label
    return EVENT_LOOP


def summarize_profiles(directory: Path, top: int = 25) -> dict[str, Any]:
    """Per phase: the share of samples in which each function is on the stack (inclusive)
    and at the top of it (self), and a breakdown into BUCKETS, from py-spy's collapsed
    stacks."""
    summary: dict[str, Any] = {}
    lines_out: list[str] = []
    for name, tally in tally_profiles(directory, _bucket):
        phase: dict[str, Any] = {
            "samples": tally.samples,
            "inclusive": tally.shares(tally.inclusive.most_common(top)),
            "self": tally.shares(tally.own.most_common(top)),
            "project": tally.shares(
                (f, c) for f, c in tally.inclusive.most_common() if "(clusterapi/" in f
            )[:top],
            "breakdown": tally.shares(tally.buckets.most_common()),
        }
        summary[name] = phase
        lines_out.append(f"== {name}: {tally.samples} samples (the thread holding the GIL)")
        lines_out.append("  breakdown %:")
        lines_out += [f"    {pct:5.1f}  {b}" for b, pct in phase["breakdown"]]
        lines_out.append("  Berth functions, inclusive %:")
        lines_out += [f"    {pct:5.1f}  {f}" for f, pct in phase["project"]]
        lines_out.append("  inclusive %:")
        lines_out += [f"    {pct:5.1f}  {f}" for f, pct in phase["inclusive"]]
        lines_out.append("  self %:")
        lines_out += [f"    {pct:5.1f}  {f}" for f, pct in phase["self"]]
    (directory / "summary.txt").write_text("\n".join(lines_out) + "\n")
    return summary


# --- output -----------------------------------------------------------------------------------


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference else 0.0


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal: the figure, its reference in the same run, the ratio, and whether it holds."""
    empty = report["empty_max"]["rate"]
    creates = report["creates"]["rate"]
    gets = report["get_max"]["rate"]
    list_json = report["list_json"]["median_s"]
    list_table = report["list_table"]["median_s"]
    watch_p99 = report["watch"]["p99_ms"]
    return [
        {
            "figure": "pod creates/s",
            "value": creates,
            "reference": "empty view req/s",
            "ref_value": empty,
            "ratio": _ratio(creates, empty),
            "goal": f">= {GOALS['creates_vs_empty']:.2f}",
            "met": _ratio(creates, empty) >= GOALS["creates_vs_empty"],
        },
        {
            "figure": "pod GETs/s (max)",
            "value": gets,
            "reference": "empty view req/s",
            "ref_value": empty,
            "ratio": _ratio(gets, empty),
            "goal": f">= {GOALS['gets_vs_empty']:.2f}",
            "met": _ratio(gets, empty) >= GOALS["gets_vs_empty"],
        },
        {
            "figure": "LIST 10k pods, JSON (s)",
            "value": list_json,
            "reference": "limit (s)",
            "ref_value": GOALS["list_seconds"],
            "ratio": _ratio(list_json, GOALS["list_seconds"]),
            "goal": "<= 1.00",
            "met": list_json <= GOALS["list_seconds"],
        },
        {
            "figure": "LIST 10k pods, Table (s)",
            "value": list_table,
            "reference": "limit (s)",
            "ref_value": GOALS["list_seconds"],
            "ratio": _ratio(list_table, GOALS["list_seconds"]),
            "goal": "<= 1.00",
            "met": list_table <= GOALS["list_seconds"],
        },
        {
            "figure": "watch p99 (ms)",
            "value": watch_p99,
            "reference": "limit (ms)",
            "ref_value": GOALS["watch_p99_ms"],
            "ratio": _ratio(watch_p99, GOALS["watch_p99_ms"]),
            "goal": "<= 1.00",
            "met": watch_p99 <= GOALS["watch_p99_ms"],
        },
    ]


def _ms_per_request(phase: dict[str, Any], helpers: bool = False) -> float:
    """API-process CPU milliseconds per request in a load phase (plus the Celery helpers'
    when ``helpers``)."""
    seconds = phase["cpu"]["server_seconds"]
    if helpers:
        seconds += phase["cpu"].get("helpers_seconds", 0.0)
    return 1000 * seconds / phase["requests"] if phase["requests"] else 0.0


def render_text(report: dict[str, Any]) -> str:
    m = report["machine"]
    s = report["settings"]
    e_max, e_fix = report["empty_max"], report["empty_fixed"]
    g_max, g_fix = report["get_max"], report["get_fixed"]
    cr, fill, w, db = report["creates"], report["fill"], report["watch"], report["db_commits"]
    lj, lt = report["list_json"], report["list_table"]
    out = [
        f"Berth API benchmark — {report['date']} — {report['database']}",
        f"machine: {m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB, Python {m['python']}; "
        f"other programs' load before start: {report['background_load_cores']:.2f} cores",
        f"command: {report['command']}",
        f"client: {s['clients']} keep-alive HTTPS/1.1 connections (http.client, one thread each)"
        + (f"; client and server at nice {s['nice']}" if s.get("nice") else "")
        + ("" if s.get("controllers", True) else "; controllers off (BERTH_CONTROLLERS=0)")
        + (" — PROFILED RUN (py-spy attached): figures are depressed" if s["profiled"] else ""),
        "",
        f"{'figure':<34}{'value':>12}  {'reference (same run)':<28}{'ref':>10}{'ratio':>8}",
        "-" * 94,
    ]

    def row(name: str, value: str, ref_name: str = "", ref: str = "", ratio: str = "") -> None:
        out.append(f"{name:<34}{value:>12}  {ref_name:<28}{ref:>10}{ratio:>8}")

    empty = e_max["rate"]
    row("empty view req/s (max)", f"{empty:.0f}")
    row(
        "pod creates/s",
        f"{cr['rate']:.0f}",
        "empty view req/s",
        f"{empty:.0f}",
        f"{_ratio(cr['rate'], empty):.2f}",
    )
    rounds = report.get("rounds")
    if rounds and len(rounds["empty"]) > 1:
        ratios = ", ".join(
            f"{_ratio(c, e):.2f}" for e, c in zip(rounds["empty"], rounds["creates"], strict=True)
        )
        out.append(
            f"  (empty view and creates alternated in {len(rounds['empty'])} rounds of "
            f"{s['duration_s'] / len(rounds['empty']):g} s; ratio per round: {ratios})"
        )
    row(
        "pod creates/s",
        f"{cr['rate']:.0f}",
        "raw DB commits/s",
        f"{db['rate']:.0f}",
        f"{_ratio(cr['rate'], db['rate']):.3f}",
    )
    row(
        "pod GETs/s (max)",
        f"{g_max['rate']:.0f}",
        "empty view req/s",
        f"{empty:.0f}",
        f"{_ratio(g_max['rate'], empty):.2f}",
    )
    row(
        f"GET p50 ms @ {report['fixed_rate']:g}/s",
        f"{g_fix['p50_ms']:.1f}",
        "empty view p50 ms",
        f"{e_fix['p50_ms']:.1f}",
        f"{_ratio(g_fix['p50_ms'], e_fix['p50_ms']):.2f}",
    )
    row(
        f"GET p99 ms @ {report['fixed_rate']:g}/s",
        f"{g_fix['p99_ms']:.1f}",
        "empty view p99 ms",
        f"{e_fix['p99_ms']:.1f}",
        f"{_ratio(g_fix['p99_ms'], e_fix['p99_ms']):.2f}",
    )
    row(
        "server CPU ms per create",
        f"{_ms_per_request(cr):.2f}",
        "per empty view",
        f"{_ms_per_request(e_max):.2f}",
        f"{_ratio(_ms_per_request(cr), _ms_per_request(e_max)):.2f}",
    )
    row("  + Celery helpers, ms per create", f"{_ms_per_request(cr, helpers=True):.2f}")
    row(
        "server CPU ms per GET",
        f"{_ms_per_request(g_max):.2f}",
        "per empty view",
        f"{_ms_per_request(e_max):.2f}",
        f"{_ratio(_ms_per_request(g_max), _ms_per_request(e_max)):.2f}",
    )
    if report["fixed_rate_note"]:
        out.append(f"  (fixed rate: {report['fixed_rate_note']})")
    waits = {k: v for k, v in (report.get("settled_s") or {}).items() if v > 1.5}
    if waits:
        listed = ", ".join(f"{k} {v:g}s" for k, v in waits.items())
        out.append(f"  (waited for the control loops to go idle before: {listed})")
    row(f"fill {s['pods']} pods (s)", f"{fill['seconds']:.1f}", "pods/s", f"{fill['rate']:.0f}")
    row(
        f"LIST {lj['items']} pods JSON (s)",
        f"{lj['median_s']:.3f}",
        "limit (s)",
        "1.000",
        f"{lj['median_s']:.2f}",
    )
    row(
        f"LIST {lt['items']} pods Table (s)",
        f"{lt['median_s']:.3f}",
        "limit (s)",
        "1.000",
        f"{lt['median_s']:.2f}",
    )
    row("watch p50 ms (write->event)", f"{w['p50_ms']:.1f}", "limit on p99 (ms)", "100")
    row(
        "watch p99 ms (write->event)",
        f"{w['p99_ms']:.1f}",
        "limit on p99 (ms)",
        "100",
        f"{w['p99_ms'] / GOALS['watch_p99_ms']:.2f}",
    )
    row("  write round trip p50 ms", f"{w['write_p50_ms']:.1f}")
    row("  write round trip p99 ms", f"{w['write_p99_ms']:.1f}")
    row("raw DB commits/s", f"{db['rate']:.0f}", "1 connection, 1-row txns")
    out += ["", "goals:"]
    for goal in goals(report):
        mark = "MET" if goal["met"] else "NOT MET"
        out.append(
            f"  {goal['figure']:<28} ratio {goal['ratio']:.2f} (goal {goal['goal']}): {mark}"
        )
    out += [
        "",
        "phases (CPU in cores: client = this process, server = the API process, helpers = "
        "the Celery worker and beat `up` starts, db = PostgreSQL, other = other programs; "
        f"{m['cores']} cores in all):",
        f"  {'phase':<12}{'requests':>9}{'errors':>7}{'seconds':>8}{'req/s':>7}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'client':>7}{'server':>7}{'helpers':>8}{'db':>6}{'other':>6}",
    ]

    def cpu_cells(c: dict[str, float]) -> str:
        return (
            f"{c['client']:>7.2f}{c['server']:>7.2f}{c.get('helpers', 0.0):>8.2f}"
            f"{c['database']:>6.2f}{c['other']:>6.2f}"
        )

    for key in ("empty_max", "empty_fixed", "creates", "fill", "get_max", "get_fixed"):
        p = report[key]
        out.append(
            f"  {key:<12}{p['requests']:>9}{p['errors']:>7}{p['seconds']:>8.1f}{p['rate']:>7.0f}"
            f"{p['p50_ms']:>8.1f}{p['p99_ms']:>8.1f}" + cpu_cells(p["cpu"])
        )
        if p["errors"]:
            out.append(f"      first error: {p['first_error'][:150]}")
    for key in ("list_json", "list_table"):
        p = report[key]
        times = ", ".join(f"{t:.3f}" for t in p["times_s"])
        out.append(
            f"  {key:<12}{p['items']} items, {p['bytes'] / 1e6:.1f} MB, times {times} s;"
            + cpu_cells(p["cpu"])
        )
    out.append(
        f"  watch       {w['writes']} writes, {w['events']} events ({w['missing']} missing), "
        f"max {w['max_ms']:.1f} ms;" + cpu_cells(w["cpu"])
    )
    out.append(
        f"  db_commits  {db['commits']} commits in {db['seconds']:.1f} s, "
        f"{db['payload_bytes']} B rows; {db['settings']}"
    )
    if "profile" in report:
        out += ["", "profile (py-spy --gil: share of samples of the thread holding the GIL):"]
        for phase, data in report["profile"].items():
            out.append(f"  {phase} ({data['samples']} samples):")
            out += [f"    {pct:5.1f}%  {b}" for b, pct in data["breakdown"]]
    return "\n".join(line.rstrip() for line in out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    add_postgres_url(parser)
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200.0, help="fixed GET rate (req/s)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed phase")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="slices the empty view and the creates alternate in (--duration split evenly)",
    )
    parser.add_argument("--pods", type=int, default=10000, help="pods to create and LIST")
    parser.add_argument("--list-repeats", type=int, default=3)
    parser.add_argument("--watch-rate", type=float, default=20.0, help="writes/s during watch")
    parser.add_argument("--profile", metavar="DIR", help="sample the server with py-spy into DIR")
    parser.add_argument(
        "--no-controllers",
        dest="controllers",
        action="store_false",
        help="start the server with BERTH_CONTROLLERS=0: writes wake no control loop",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value for the client and the server (e.g. -10 on a shared machine; needs root)",
    )
    add_quiet_wait(parser, 120.0)
    args = parser.parse_args(argv)
    for name in ("clients", "pods", "list_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.duration <= 120 or not 0 < args.rate <= 5000 or not 0 < args.watch_rate <= 500:
        parser.error(
            "--duration must be in (0, 120], --rate in (0, 5000], --watch-rate in (0, 500]"
        )
    if not -20 <= args.nice <= 19:
        parser.error("--nice must be in [-20, 19]")
    if not 0 <= args.quiet_wait <= 1800:
        parser.error("--quiet-wait must be in [0, 1800]")
    if args.pods > 100000:
        parser.error("--pods is at most 100000")
    print_report(run(args), args.output, render_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
