"""The node agent benchmark: pod startup latency (process runtime) and 1,000 simulated nodes.

    python bench/nodeagent.py [--phase startup|scale|all] [--output text|json]
                              [--pods 100] [--create-rate 5] [--sleeper sleep|python]
                              [--nodes 1000] [--duration 1800] [--interval 10]
                              [--database sqlite|postgres] [--broker embedded|redis]
                              [--quiet-wait 60] [--profile DIR]

Each phase starts its own ``manage.py up`` (``tests/live.py``: its own data directory, a free
loopback port, the embedded defaults — SQLite, the file broker and cache; a fresh database on
PostgreSQL; with ``--broker redis`` a private ``redis-server`` on a free loopback port as
broker and cache, as in production) and one node agent (``manage.py nodeagent``, joined with
a bootstrap token as ``AgentProcess`` does), and stops them at the end.

1. **startup** — pod startup latency with the process runtime. One agent serving one node
   (``--runtime process``, its pods are real local processes). After one warm-up pod,
   ``--pods`` pods (one container: ``sleep 3600``, or with ``--sleeper python`` a
   ``python3 -c`` sleeper) are created at a steady ``--create-rate`` (5/s by default: an open
   loop well below what the server, the scheduler and the agent sustain, so the figure is the
   latency of one pod, not the length of a queue). A watch on the namespace (opened before
   the first create) timestamps, per pod, the arrival of the first event showing it bound to
   the node (``spec.nodeName``), the first status the agent reported (``status.hostIP``), phase
   ``Running``, and condition ``Ready=True``. Latency = that arrival minus the instant just
   before the create request was sent. Printed: p50/p90/p99/max of create→Running and
   create→Ready (the goal: p99 ≤ 1 s; Kubernetes' SLO is 5 s), and where the time goes:
   create→bound (the API's create, the wake-up of the Celery worker and the scheduler's bind),
   bound→first agent report (the agent's pod watch, the runtime preparing the pod, one status
   PATCH), first report→Running (the process started and reported). Watch arrival times are
   used rather than the pod's condition timestamps, which have one-second resolution.
2. **scale** — one agent with ``--runtime simulated --nodes K`` (K=1,000 by default) and the
   real lease renew interval (10 s, not the 2 s the tests use). Registration is timed (agent
   started → all K Nodes listed with ``Ready=True``); then the nodes are held for
   ``--duration`` seconds, sampled every ``--interval`` seconds: the agent process's resident
   memory (RSS, with its children) and CPU (CPU-time delta / wall time), one LIST of all Nodes
   (nodes not ``Ready=True``; every ``Ready=True`` → other transition while the agent runs is
   a *false NotReady*), one LIST of all Leases (the age of the stalest ``renewTime``, against
   the 40 s grace period of the node lifecycle controller, and how many were renewed since
   the last sample: 100/s are due), and the agent's log (heartbeat failures). At the end the
   ``NodeNotReady`` events of the node lifecycle controller are counted too: they catch a
   NotReady shorter than one sample interval. Printed: peak and mean RSS, mean and p95 agent
   CPU in cores (goals: ≤ 300 MB, ≤ 0.3 core, no false NotReady), and the CPU of the API
   process, the Celery worker, the rest of ``up`` (beat) and the rest of the machine, so the
   whole cost is in view; the sampler's own two LISTs are in the server's figure (about 1 %
   of its work).

CPU is accounted as in ``bench/api.py`` (both use ``bench/common.py``): CPU seconds of a
process and of its descendants (running, and reaped ones counted in their parents) from
``/proc``, divided by the wall time, in cores (1.0 = one core busy all the time). With
``--profile DIR`` py-spy samples the agent (the startup window in phase 1, the hold in phase
2) and writes collapsed stacks and a summary of the hot functions to DIR; figures from a
profiled run are depressed.

Every loop is bounded in count and time; the script stops the agent and the server it started
(the process runtime stops its pods' processes) and exits by itself. Traffic goes to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from common import (
    ROOT,
    Client,
    Profiler,
    add_postgres_url,
    add_quiet_wait,
    command_line,
    condition_status,
    logger,
    machine,
    machine_busy_seconds,
    percentile,
    print_report,
    profile_directory,
    remove_tree,
    report_date,
    select_database,
    spread,
    tally_profiles,
    tree_cpu,
    wait_for_quiet,
    watch_events,
)

sys.path.insert(0, str(ROOT))

from tests.live import (  # needs ROOT on sys.path (above)
    AgentProcess,
    LiveServer,
    RedisServer,
    celery_worker_pid,
)

NAMESPACE = "bench-startup"
LEASE_NAMESPACE = "kube-node-lease"
GRACE_SECONDS = 40.0  # the node lifecycle controller's default grace period
GOALS = {
    "startup_p99_s": 1.0,
    "agent_rss_mb": 300.0,
    "agent_cores": 0.3,
    "false_not_ready": 0,
}

_log = logger("nodeagent")


# --- measuring CPU and memory -----------------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, in bytes (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


@dataclass
class Cpu:
    """CPU used over a window, in cores: the agent (with its children, e.g. the process
    runtime's containers), the API process, the Celery worker, the rest of what ``up`` starts
    (beat), this script, and the rest of the machine."""

    seconds: float = 0.0
    agent: float = 0.0
    server: float = 0.0
    worker: float = 0.0
    beat: float = 0.0
    client: float = 0.0
    other: float = 0.0
    agent_cpu_seconds: float = 0.0


class Meter:
    """Readings of CPU seconds for the processes of one run."""

    def __init__(self, server_pid: int, worker_pid: int, agent_pid: int) -> None:
        self.server_pid = server_pid
        self.worker_pid = worker_pid
        self.agent_pid = agent_pid

    def read(self) -> dict[str, float]:
        cpu = tree_cpu([self.server_pid, self.worker_pid, self.agent_pid])
        server_own, helpers = cpu[self.server_pid]
        return {
            "wall": time.monotonic(),
            "agent": sum(cpu[self.agent_pid]),
            "server": server_own,
            "worker": sum(cpu[self.worker_pid]),
            "helpers": helpers,  # the worker's tree and beat
            "client": time.process_time(),
            "machine": machine_busy_seconds(),
        }

    @staticmethod
    def between(start: dict[str, float], end: dict[str, float]) -> Cpu:
        wall = max(end["wall"] - start["wall"], 1e-9)

        def delta(key: str) -> float:
            return end[key] - start[key]

        use = Cpu(seconds=wall)
        use.agent_cpu_seconds = delta("agent")
        use.agent = delta("agent") / wall
        use.server = delta("server") / wall
        use.worker = delta("worker") / wall
        use.beat = max(delta("helpers") - delta("worker"), 0.0) / wall
        use.client = delta("client") / wall
        mine = delta("agent") + delta("server") + delta("helpers") + delta("client")
        use.other = max(delta("machine") - mine, 0.0) / wall
        return use


# --- the API ----------------------------------------------------------------------------------


def connect(server: LiveServer, timeout: float = 60) -> Client:
    """A client of ``server``, as its admin."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    return Client(server.port, context, server.admin_token(), timeout)


def parse_time(text: str) -> float:
    """A metav1.Time or MicroTime as a POSIX timestamp."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- profiling --------------------------------------------------------------------------------


def summarize_profiles(directory: Path, top: int = 30) -> dict[str, Any]:
    """Per profile: the share of samples with each function on the stack (inclusive) and
    at its top (self); written to DIR/summary.txt as well."""
    summary: dict[str, Any] = {}
    lines: list[str] = []
    for name, tally in tally_profiles(directory):
        summary[name] = {
            "samples": tally.samples,
            "inclusive": tally.shares(tally.inclusive.most_common(top)),
            "self": tally.shares(tally.own.most_common(top)),
        }
        lines.append(f"== {name}: {tally.samples} samples")
        lines.append("  inclusive %:")
        lines += [f"    {p:5.1f}  {f}" for f, p in summary[name]["inclusive"]]
        lines.append("  self %:")
        lines += [f"    {p:5.1f}  {f}" for f, p in summary[name]["self"]]
    (directory / "summary.txt").write_text("\n".join(lines) + "\n")
    return summary


# --- phase 1: pod startup latency -------------------------------------------------------------


@dataclass
class PodTimes:
    """perf_counter instants of one pod's life as this script saw it."""

    sent: float = 0.0  # just before the create request was sent
    answered: float = 0.0  # the create's response read
    bound: float | None = None  # first watch event with spec.nodeName
    reported: float | None = None  # first watch event with the agent's status (hostIP)
    running: float | None = None  # first watch event with phase Running
    ready: float | None = None  # first watch event with condition Ready=True


def sleeper_pod(name: str, sleeper: str) -> dict[str, Any]:
    """A pod whose one container sleeps for an hour (a real process in the process runtime)."""
    if sleeper == "python":
        container = {
            "name": "main",
            "image": "python:3.11",
            "command": ["python3", "-c", "import time; time.sleep(3600)"],
        }
    else:
        container = {"name": "main", "image": "busybox", "command": ["sleep", "3600"]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-startup"}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
    }


class PodWatch:
    """A watch on one namespace's pods, recording when each stage of each pod was seen."""

    def __init__(self, server: LiveServer, namespace: str, version: str, seconds: int) -> None:
        self.client = connect(server, timeout=seconds + 60)
        self.times: dict[str, PodTimes] = {}
        self.lock = threading.Lock()
        self.events = 0
        self.stream = self.client.watch(
            f"/api/v1/namespaces/{namespace}/pods?watch=true&resourceVersion={version}"
            f"&timeoutSeconds={seconds}"
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def expect(self, name: str) -> PodTimes:
        with self.lock:
            return self.times.setdefault(name, PodTimes())

    def _read(self) -> None:
        for now, event in watch_events(self.stream, self.stop):
            pod = event.get("object") or {}
            name = str((pod.get("metadata") or {}).get("name") or "")
            with self.lock:
                self.events += 1
                times = self.times.get(name)
            if times is None or event.get("type") not in ("ADDED", "MODIFIED"):
                continue
            status = pod.get("status") or {}
            if times.bound is None and (pod.get("spec") or {}).get("nodeName"):
                times.bound = now
            if times.reported is None and status.get("hostIP"):
                times.reported = now
            if times.running is None and status.get("phase") == "Running":
                times.running = now
            if times.ready is None and condition_status(pod) == "True":
                times.ready = now

    def close(self) -> None:
        self.stop.set()
        self.client.interrupt()  # unblock the reader before closing
        self.thread.join(timeout=5)
        self.client.close()


def wait_until(what: str, check: Any, limit: float, every: float = 0.5) -> float:
    """Poll ``check()`` until it is true (at most ``limit`` seconds); returns the wait."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise RuntimeError(f"{what}: not done after {limit:.0f} s")
        time.sleep(every)
    return time.monotonic() - start


def _node_ready(client: Client, name: str) -> bool:
    status, body = client.request("GET", f"/api/v1/nodes/{name}")
    return status == 200 and condition_status(orjson.loads(body)) == "True"


def _agent_alive(agent: AgentProcess) -> None:
    if agent.process is None or agent.process.poll() is not None:
        raise RuntimeError(f"the node agent exited:\n{agent.log()}")


def _server(args: argparse.Namespace, tmp: Path) -> tuple[LiveServer, RedisServer | None]:
    """The live server (not started yet), and with ``--broker redis`` a private Redis
    (started) as its broker and cache."""
    if args.broker != "redis":
        return LiveServer(tmp), None
    redis_server = RedisServer(tmp / "redis").start()
    return LiveServer(tmp, env={"REDIS_URL": redis_server.url}), redis_server


def run_startup(args: argparse.Namespace, profiler: Profiler) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="berth-bench-agent-"))
    server, redis_server = _server(args, tmp)
    name = "bench-node"
    agent = AgentProcess(
        server,
        name=name,
        options=("--port", "0", "--capacity", f"pods={args.pods + 10}"),
    )
    out: dict[str, Any] = {}
    client: Client | None = None
    try:
        _log("startup: starting the server")
        server.start()
        assert server.process is not None
        worker = celery_worker_pid(server)
        client = connect(server)
        started = time.monotonic()
        agent.start()
        assert agent.process is not None
        meter = Meter(server.process.pid, worker, agent.process.pid)
        api = client

        def node_ready() -> bool:
            _agent_alive(agent)
            return _node_ready(api, name)

        wait_until("the process agent's node Ready", node_ready, 120)
        out["node_ready_s"] = round(time.monotonic() - started, 2)
        status, body = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        if status != 201:
            raise RuntimeError(f"creating namespace: {status} {body[:300]!r}")
        account = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"
        wait_until(
            "the namespace's default ServiceAccount",
            lambda: api.request("GET", account)[0] == 200,
            60,
        )
        version = api.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["metadata"]["resourceVersion"]
        window = int(args.warmup * 60 + args.pods / args.create_rate + args.timeout + 120)
        watch = PodWatch(server, NAMESPACE, version, window)
        try:
            out.update(_startup_measure(args, client, watch, meter, agent, profiler))
        finally:
            watch.close()
        _log("startup: deleting the pods")
        out["cleanup_s"] = round(_delete_pods(client, agent), 1)
    finally:
        if client is not None:
            client.close()
        _stop(agent, server, redis_server, tmp)
    return out


def _startup_measure(
    args: argparse.Namespace,
    client: Client,
    watch: PodWatch,
    meter: Meter,
    agent: AgentProcess,
    profiler: Profiler,
) -> dict[str, Any]:
    # Warm-up pods: the first pod pays one-off costs (imports in the agent, the first
    # service-account token); they run to Running before the measured pods are created.
    for i in range(args.warmup):
        name = f"warm-{i}"
        times = watch.expect(name)
        times.sent = time.perf_counter()
        status, body = client.request(
            "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", sleeper_pod(name, args.sleeper)
        )
        if status != 201:
            raise RuntimeError(f"creating {name}: {status} {body[:300]!r}")
        wait_until(f"warm-up pod {name} Running", lambda t=times: t.running is not None, 60, 0.05)
    warmup = [
        watch.times[f"warm-{i}"].running - watch.times[f"warm-{i}"].sent  # type: ignore[operator]
        for i in range(args.warmup)
    ]
    names = [f"pod-{i:04d}" for i in range(args.pods)]
    expected = {n: watch.expect(n) for n in names}
    errors: list[str] = []
    late = 0
    _log(f"startup: creating {args.pods} pods at {args.create_rate:g}/s")
    before = meter.read()
    with profiler.sample(meter.agent_pid, "startup-agent"):
        start = time.perf_counter() + 0.05
        for i, name in enumerate(names):
            due = start + i / args.create_rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:
                late += 1
            times = expected[name]
            times.sent = time.perf_counter()
            status, body = client.request(
                "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", sleeper_pod(name, args.sleeper)
            )
            times.answered = time.perf_counter()
            if status != 201:
                errors.append(f"{name}: {status} {body[:200]!r}")
        creates_done = time.perf_counter()
        deadline = creates_done + args.timeout
        while time.perf_counter() < deadline:
            if all(t.ready is not None and t.running is not None for t in expected.values()):
                break
            _agent_alive(agent)
            time.sleep(0.1)
        after = meter.read()
    cpu = Meter.between(before, after)

    def stage(a: str, b: str) -> list[float]:
        values = []
        for times in expected.values():
            first, second = getattr(times, a), getattr(times, b)
            if first and second is not None:
                values.append(second - first)
        return values

    running = stage("sent", "running")
    ready = stage("sent", "ready")
    slowest = sorted((t.running - t.sent, n) for n, t in expected.items() if t.running is not None)[
        -5:
    ]
    slow_rows = []
    for _total, name in reversed(slowest):
        t = expected[name]
        slow_rows.append(
            {
                "pod": name,
                "create_ms": (t.answered - t.sent) * 1000,
                "bound_ms": ((t.bound or t.sent) - t.sent) * 1000,
                "reported_ms": ((t.reported or t.sent) - t.sent) * 1000,
                "running_ms": ((t.running or t.sent) - t.sent) * 1000,
            }
        )
    return {
        "pods": args.pods,
        "create_rate": args.create_rate,
        "creates_late": late,
        "create_errors": len(errors),
        "first_error": errors[0] if errors else "",
        "create_seconds": round(creates_done - start, 2),
        "not_running": sum(1 for t in expected.values() if t.running is None),
        "not_ready": sum(1 for t in expected.values() if t.ready is None),
        "warmup_running_s": [round(w, 3) for w in warmup],
        "running_s": spread(running),
        "ready_s": spread(ready),
        "stages_ms": {
            "create request (sent -> answered)": spread(stage("sent", "answered"), 1000),
            "scheduler (sent -> bound)": spread(stage("sent", "bound"), 1000),
            "agent pickup (bound -> first agent status)": spread(stage("bound", "reported"), 1000),
            "container start (first agent status -> Running)": spread(
                stage("reported", "running"), 1000
            ),
            "Running -> Ready": spread(stage("running", "ready"), 1000),
        },
        "slowest": slow_rows,
        "watch_events": watch.events,
        "cpu": asdict(cpu),
    }


def _delete_pods(client: Client, agent: AgentProcess, limit: float = 120.0) -> float:
    """Delete every pod of the namespace (1 s grace: the agent stops the processes and then
    removes the pods) and wait until none is left."""
    start = time.monotonic()
    status, body = client.request(
        "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods?gracePeriodSeconds=1"
    )
    if status != 200:
        _log(f"deleting the pods: {status} {body[:200]!r}")
        return 0.0
    with contextlib.suppress(RuntimeError):
        wait_until(
            "the pods deleted",
            lambda: not client.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"],
            limit,
            1.0,
        )
    return time.monotonic() - start


def _stop(
    agent: AgentProcess, server: LiveServer, redis_server: RedisServer | None, tmp: Path
) -> None:
    """Stop the agent, the server (waiting for the helpers it started) and Redis, then any
    process still working in the run's data directory (a container, an orphaned helper);
    remove the data directory."""
    agent_tree = _descendants(agent.process)
    agent.stop()
    _reap(agent_tree, "the agent")
    server_tree = _descendants(server.process)
    server.stop()
    _reap(server_tree, "the server")
    if redis_server is not None:
        redis_server.stop()
    _reap(_strays(tmp), f"the run in {tmp}")
    remove_tree(tmp, _log)


def _descendants(process: subprocess.Popen[bytes] | None) -> list[psutil.Process]:
    if process is None:
        return []
    try:
        return list(psutil.Process(process.pid).children(recursive=True))
    except psutil.Error:
        return []


def _strays(tmp: Path) -> list[psutil.Process]:
    """Processes whose command line or working directory is in ``tmp`` (only this run's)."""
    found = []
    marker = str(tmp)
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if marker in " ".join(process.cmdline()) or process.cwd().startswith(marker):
                found.append(process)
    return found


def _reap(processes: list[psutil.Process], owner: str, wait: float = 15.0) -> None:
    """Give ``processes`` ``wait`` seconds to exit, then kill those left."""
    _gone, alive = psutil.wait_procs(processes, timeout=wait)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            _log(f"killing leftover process {process.pid} of {owner}")
            process.kill()
    psutil.wait_procs(alive, timeout=5)


# --- phase 2: simulated nodes at scale --------------------------------------------------------


@dataclass
class Sample:
    """One look at the agent and the nodes during the hold."""

    t: float  # seconds since the hold started
    rss_mb: float
    agent_cores: float
    server_cores: float
    worker_cores: float
    beat_cores: float
    other_cores: float
    not_ready: int
    transitions: int
    oldest_lease_s: float
    leases: int
    renewals_per_s: float  # Leases whose renewTime changed since the last sample, per second
    list_s: float
    heartbeat_failures: int


@dataclass
class LogTail:
    """Reads the agent's log incrementally, counting heartbeat failures and warnings."""

    path: Path
    offset: int = 0
    heartbeat_failures: int = 0
    warnings: int = 0
    errors: int = 0
    first: list[str] = field(default_factory=list)
    ready_line: bool = False

    def read(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self.offset += end
        for raw in data[:end].decode(errors="replace").splitlines():
            if "node agent ready" in raw:
                self.ready_line = True
            if "heartbeat failed" in raw:
                self.heartbeat_failures += 1
            if " WARNING " in raw:
                self.warnings += 1
            elif " ERROR " in raw or "Traceback" in raw:
                self.errors += 1
            else:
                continue
            if len(self.first) < 5:
                self.first.append(raw[:300])


def _list_ready(client: Client, prefix: str) -> tuple[dict[str, str], float]:
    start = time.perf_counter()
    nodes = client.get("/api/v1/nodes")["items"]
    took = time.perf_counter() - start
    return {
        str(n["metadata"]["name"]): condition_status(n)
        for n in nodes
        if str(n["metadata"]["name"]).startswith(prefix)
    }, took


def _lease_times(client: Client, names: set[str]) -> dict[str, float]:
    """Node name → its Lease's renewTime (POSIX seconds), for the Leases that exist."""
    leases = client.get(f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases")
    out: dict[str, float] = {}
    for lease in leases["items"]:
        name = lease["metadata"]["name"]
        renew = (lease.get("spec") or {}).get("renewTime")
        if name in names and renew:
            out[name] = parse_time(str(renew))
    return out


def run_scale(args: argparse.Namespace, profiler: Profiler) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="berth-bench-agent-"))
    server, redis_server = _server(args, tmp)
    prefix = "sim"
    agent = AgentProcess(
        server,
        name=prefix,
        runtime="simulated",
        options=(
            "--nodes",
            str(args.nodes),
            "--lease-renew-interval",
            f"{args.renew_interval:g}",
        ),
    )
    out: dict[str, Any] = {"nodes": args.nodes, "renew_interval_s": args.renew_interval}
    client: Client | None = None
    try:
        _log("scale: starting the server")
        server.start()
        assert server.process is not None
        worker = celery_worker_pid(server)
        client = connect(server, timeout=120)
        _log(f"scale: starting the agent with {args.nodes} simulated nodes")
        agent.start()
        started = time.monotonic()
        assert agent.process is not None
        meter = Meter(server.process.pid, worker, agent.process.pid)
        tail = LogTail(server.data_dir / f"agent-{prefix}.log")
        out.update(_register(args, client, agent, meter, tail, prefix, started))
        out.update(_hold(args, client, agent, meter, tail, prefix, profiler))
        status, body = client.request(
            "GET", "/api/v1/namespaces/default/events?fieldSelector=reason%3DNodeNotReady"
        )
        events = orjson.loads(body)["items"] if status == 200 else []
        out["node_not_ready_events"] = sum(int(e.get("count") or 1) for e in events)
        tail.read()
        out["log"] = {
            "heartbeat_failures": tail.heartbeat_failures,
            "warnings": tail.warnings,
            "errors": tail.errors,
            "first": tail.first,
        }
    finally:
        if client is not None:
            client.close()
        _stop(agent, server, redis_server, tmp)
    return out


def _register(
    args: argparse.Namespace,
    client: Client,
    agent: AgentProcess,
    meter: Meter,
    tail: LogTail,
    prefix: str,
    started: float,
) -> dict[str, Any]:
    """Wait until every node is listed Ready=True (bounded); time it."""
    before = meter.read()
    peak_rss = 0
    ready_line_s: float | None = None
    deadline = started + args.register_timeout
    counted = 0
    while True:
        _agent_alive(agent)
        peak_rss = max(peak_rss, tree_rss(meter.agent_pid))
        tail.read()
        if tail.ready_line and ready_line_s is None:
            ready_line_s = time.monotonic() - started
        states, _took = _list_ready(client, prefix)
        counted = sum(1 for s in states.values() if s == "True")
        if counted >= args.nodes:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {counted} of {args.nodes} nodes Ready after {args.register_timeout:g} s"
            )
        time.sleep(1.0)
    registered = time.monotonic() - started
    cpu = Meter.between(before, meter.read())
    _log(f"scale: {args.nodes} nodes Ready after {registered:.1f} s")
    return {
        "registration": {
            "seconds": round(registered, 1),
            "agent_ready_line_s": round(ready_line_s, 1) if ready_line_s is not None else None,
            "peak_rss_mb": round(peak_rss / 2**20, 1),
            "cpu": asdict(cpu),
        }
    }


def _hold(
    args: argparse.Namespace,
    client: Client,
    agent: AgentProcess,
    meter: Meter,
    tail: LogTail,
    prefix: str,
    profiler: Profiler,
) -> dict[str, Any]:
    """Hold the nodes for --duration seconds, sampling every --interval seconds."""
    names = {f"{prefix}-{i}" for i in range(args.nodes)}
    previous, _took = _list_ready(client, prefix)
    renew_before = _lease_times(client, names)
    transitions: list[dict[str, Any]] = []
    samples: list[Sample] = []
    _log(f"scale: holding {args.nodes} nodes for {args.duration:g} s")
    with profiler.sample(meter.agent_pid, "scale-agent-hold"):
        first = last = meter.read()
        hold_start = first["wall"]
        deadline = hold_start + args.duration
        for count in range(1, int(args.duration / args.interval) + 2):
            wake = min(hold_start + count * args.interval, deadline)
            time.sleep(max(wake - time.monotonic(), 0.0))
            if time.monotonic() >= deadline + args.interval:
                break
            _agent_alive(agent)
            reading = meter.read()
            rss_bytes = tree_rss(meter.agent_pid)
            states, took = _list_ready(client, prefix)
            lease_times = _lease_times(client, names)
            now_wall = time.time()
            oldest = max((now_wall - t for t in lease_times.values()), default=0.0)
            renewed = sum(1 for n, t in lease_times.items() if t != renew_before.get(n))
            renew_before = lease_times
            flips = 0
            for name in names:
                now_status = states.get(name, "")
                if previous.get(name) == "True" and now_status != "True":
                    flips += 1
                    transitions.append(
                        {
                            "t": round(reading["wall"] - hold_start, 1),
                            "node": name,
                            "status": now_status or "missing",
                        }
                    )
            previous = states
            tail.read()
            use = Meter.between(last, reading)
            last = reading
            samples.append(
                Sample(
                    t=round(reading["wall"] - hold_start, 1),
                    rss_mb=round(rss_bytes / 2**20, 1),
                    agent_cores=round(use.agent, 3),
                    server_cores=round(use.server, 3),
                    worker_cores=round(use.worker, 3),
                    beat_cores=round(use.beat, 3),
                    other_cores=round(use.other, 3),
                    not_ready=sum(1 for n in names if states.get(n) != "True"),
                    transitions=flips,
                    oldest_lease_s=round(oldest, 1),
                    leases=len(lease_times),
                    renewals_per_s=round(renewed / max(use.seconds, 1e-9), 1),
                    list_s=round(took, 3),
                    heartbeat_failures=tail.heartbeat_failures,
                )
            )
            if reading["wall"] >= deadline:
                break
            if count % max(1, int(60 / args.interval)) == 0:
                s = samples[-1]
                _log(
                    f"scale: t={s.t:.0f}s rss {s.rss_mb:.0f} MB agent {s.agent_cores:.2f} "
                    f"server {s.server_cores:.2f} worker {s.worker_cores:.2f} cores, "
                    f"not Ready {s.not_ready}, oldest lease {s.oldest_lease_s:.1f} s, "
                    f"{s.renewals_per_s:.0f} renewals/s"
                )
    total = Meter.between(first, last)
    rss = [s.rss_mb for s in samples]
    agent_cores = [s.agent_cores for s in samples]
    return {
        "hold": {
            "seconds": round(total.seconds, 1),
            "interval_s": args.interval,
            "samples": len(samples),
            "rss_peak_mb": max(rss, default=0.0),
            "rss_mean_mb": round(sum(rss) / len(rss), 1) if rss else 0.0,
            "rss_first_mb": rss[0] if rss else 0.0,
            "rss_last_mb": rss[-1] if rss else 0.0,
            "agent_cores_mean": round(total.agent, 3),
            "agent_cores_p95": percentile(agent_cores, 95),
            "agent_cores_max": max(agent_cores, default=0.0),
            "false_not_ready": len(transitions),
            "max_not_ready": max((s.not_ready for s in samples), default=0),
            "oldest_lease_max_s": max((s.oldest_lease_s for s in samples), default=0.0),
            "renewals_per_s_mean": round(sum(s.renewals_per_s for s in samples) / len(samples), 1)
            if samples
            else 0.0,
            "list_nodes_p50_s": percentile([s.list_s for s in samples], 50),
            "transitions": transitions[:50],
            "cpu": asdict(total),
            "series": [asdict(s) for s in samples],
        }
    }


# --- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    select_database(args.database, args.postgres_url)
    profile_dir = profile_directory(args.profile)
    # py-spy samples the agent with its children (the process runtime's containers).
    profiler = Profiler(profile_dir, rate=100, options=("--subprocesses",), stop_timeout=60)
    report: dict[str, Any] = {
        "date": report_date(),
        "command": command_line(__file__),
        "machine": machine(),
        "database": args.database,
        "broker": args.broker,
        "profiled": profile_dir is not None,
    }
    report["background_load_cores"] = round(wait_for_quiet(args.quiet_wait, _log), 2)
    if args.phase in ("startup", "all"):
        report["startup"] = run_startup(args, profiler)
    if args.phase in ("scale", "all"):
        if args.phase == "all":
            report["background_load_before_scale"] = round(wait_for_quiet(args.quiet_wait, _log), 2)
        report["scale"] = run_scale(args, profiler)
    if profile_dir is not None:
        report["profile"] = summarize_profiles(profile_dir)
    report["goals"] = goals(report)
    return report


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if "startup" in report:
        s = report["startup"]
        p99 = s["running_s"]["p99"]
        met = p99 <= GOALS["startup_p99_s"] and s["not_running"] == 0
        out.append(
            {
                "figure": "pod startup p99, create -> Running (s)",
                "value": round(p99, 3),
                "goal": "<= 1.0 (Kubernetes SLO: 5)",
                "met": met,
            }
        )
    if "scale" in report:
        h = report["scale"]["hold"]
        out += [
            {
                "figure": "agent RSS, peak (MB)",
                "value": h["rss_peak_mb"],
                "goal": "<= 300",
                "met": h["rss_peak_mb"] <= GOALS["agent_rss_mb"],
            },
            {
                "figure": "agent CPU, mean (cores)",
                "value": h["agent_cores_mean"],
                "goal": "<= 0.3",
                "met": h["agent_cores_mean"] <= GOALS["agent_cores"],
            },
            {
                "figure": "false NotReady (transitions)",
                "value": h["false_not_ready"],
                "goal": "0",
                "met": h["false_not_ready"] == 0 and report["scale"]["node_not_ready_events"] == 0,
            },
        ]
    return out


# --- output -----------------------------------------------------------------------------------


def _cpu_line(cpu: dict[str, float]) -> str:
    return (
        f"agent {cpu['agent']:.2f}, API server {cpu['server']:.2f}, Celery worker "
        f"{cpu['worker']:.2f}, beat {cpu['beat']:.2f}, this script {cpu['client']:.2f}, "
        f"other programs {cpu['other']:.2f} cores over {cpu['seconds']:.0f} s"
    )


def render_text(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        f"Berth node agent benchmark — {report['date']} — {report['database']}, "
        f"{report['broker']} broker",
        f"machine: {m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB, Python {m['python']}; "
        f"other programs' load before start: {report['background_load_cores']:.2f} cores"
        + (" — PROFILED RUN (py-spy attached): figures depressed" if report["profiled"] else ""),
        f"command: {report['command']}",
    ]
    if "startup" in report:
        s = report["startup"]
        out += [
            "",
            f"1. pod startup, process runtime: {s['pods']} pods created at {s['create_rate']:g}/s "
            f"(open loop, {s['create_seconds']:.1f} s; {s['creates_late']} sent late), "
            f"1 agent, 1 node (Ready {s['node_ready_s']:.1f} s after the agent started)",
            f"   create errors {s['create_errors']}, never Running {s['not_running']}, never "
            f"Ready {s['not_ready']}; warm-up pod(s) Running after "
            + ", ".join(f"{w:.2f} s" for w in s["warmup_running_s"]),
            f"   {'latency (s)':<50}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}",
        ]
        for key, label in (("running_s", "create -> Running"), ("ready_s", "create -> Ready")):
            d = s[key]
            out.append(
                f"   {label:<50}{d['p50']:>8.3f}{d['p90']:>8.3f}{d['p99']:>8.3f}{d['max']:>8.3f}"
            )
        out.append(f"   {'where the time goes (ms)':<50}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
        for label, d in s["stages_ms"].items():
            out.append(
                f"   {label:<50}{d['p50']:>8.1f}{d['p90']:>8.1f}{d['p99']:>8.1f}{d['max']:>8.1f}"
            )
        out.append(
            "   slowest pods (ms after the create was sent: answered, bound, "
            "first agent status, Running):"
        )
        for row in s["slowest"]:
            out.append(
                f"     {row['pod']}: {row['create_ms']:.0f}, {row['bound_ms']:.0f}, "
                f"{row['reported_ms']:.0f}, {row['running_ms']:.0f}"
            )
        out.append("   CPU while the pods started: " + _cpu_line(s["cpu"]))
    if "scale" in report:
        sc = report["scale"]
        r, h = sc["registration"], sc["hold"]
        out += [
            "",
            f"2. simulated nodes: {sc['nodes']} nodes in one agent, lease renew interval "
            f"{sc['renew_interval_s']:g} s",
            f"   registration: all nodes Ready {r['seconds']:.1f} s after the agent started "
            f"(agent's ready line at {r['agent_ready_line_s']} s); "
            f"peak RSS {r['peak_rss_mb']:.0f} MB",
            "   CPU during registration: " + _cpu_line(r["cpu"]),
            f"   hold: {h['seconds']:.0f} s, {h['samples']} samples every {h['interval_s']:g} s",
            f"   agent RSS: peak {h['rss_peak_mb']:.0f} MB, mean {h['rss_mean_mb']:.0f} MB "
            f"(first {h['rss_first_mb']:.0f}, last {h['rss_last_mb']:.0f})",
            f"   agent CPU: mean {h['agent_cores_mean']:.3f}, p95 {h['agent_cores_p95']:.3f}, "
            f"max {h['agent_cores_max']:.3f} cores (per {h['interval_s']:g} s sample)",
            f"   false NotReady: {h['false_not_ready']} transitions seen in samples, "
            f"{sc['node_not_ready_events']} NodeNotReady events; most nodes not Ready in one "
            f"sample {h['max_not_ready']}",
            f"   stalest lease: {h['oldest_lease_max_s']:.1f} s "
            f"(grace period {GRACE_SECONDS:g} s); lease renewals seen "
            f"{h['renewals_per_s_mean']:.0f}/s (due {sc['nodes'] / sc['renew_interval_s']:.0f}/s); "
            f"LIST {sc['nodes']} nodes p50 {h['list_nodes_p50_s'] * 1000:.0f} ms",
            f"   agent log: {sc['log']['heartbeat_failures']} heartbeat failures, "
            f"{sc['log']['warnings']} warnings, {sc['log']['errors']} errors",
        ]
        out += [f"     {line}" for line in sc["log"]["first"]]
        out.append("   CPU during the hold: " + _cpu_line(h["cpu"]))
        for t in h["transitions"][:10]:
            out.append(f"     t={t['t']}s {t['node']} -> {t['status']}")
    out += ["", "goals:"]
    for goal in report["goals"]:
        mark = "MET" if goal["met"] else "NOT MET"
        out.append(f"  {goal['figure']:<42} {goal['value']!s:>8} (goal {goal['goal']}): {mark}")
    if "profile" in report:
        out += ["", "profile (py-spy, share of the agent's samples), top inclusive:"]
        for phase, data in report["profile"].items():
            out.append(f"  {phase} ({data['samples']} samples):")
            out += [f"    {pct:5.1f}%  {f}" for f, pct in data["inclusive"][:15]]
    return "\n".join(line.rstrip() for line in out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--phase", choices=("startup", "scale", "all"), default="all")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--broker",
        choices=("embedded", "redis"),
        default="embedded",
        help="the Celery broker: up's embedded one, or a private redis-server (as production)",
    )
    add_postgres_url(parser)
    startup = parser.add_argument_group("phase 1: pod startup latency (process runtime)")
    startup.add_argument("--pods", type=int, default=100, help="pods to create")
    startup.add_argument("--create-rate", type=float, default=5.0, help="pod creates per second")
    startup.add_argument("--sleeper", choices=("sleep", "python"), default="sleep")
    startup.add_argument("--warmup", type=int, default=1, help="warm-up pods (not counted)")
    startup.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait after the last create"
    )
    scale = parser.add_argument_group("phase 2: simulated nodes at scale")
    scale.add_argument("--nodes", type=int, default=1000, help="simulated nodes (K)")
    scale.add_argument("--duration", type=float, default=1800.0, help="seconds to hold them")
    scale.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    scale.add_argument("--renew-interval", type=float, default=10.0, help="lease renew interval")
    scale.add_argument(
        "--register-timeout", type=float, default=900.0, help="seconds allowed to register"
    )
    parser.add_argument("--profile", metavar="DIR", help="sample the agent with py-spy into DIR")
    add_quiet_wait(parser, 60.0)
    args = parser.parse_args(argv)
    if not 1 <= args.pods <= 1000 or not 0 <= args.warmup <= 10:
        parser.error("--pods must be in [1, 1000], --warmup in [0, 10]")
    if not 0.1 <= args.create_rate <= 100 or not 1 <= args.timeout <= 900:
        parser.error("--create-rate must be in [0.1, 100], --timeout in [1, 900]")
    if not 1 <= args.nodes <= 10000:
        parser.error("--nodes must be in [1, 10000]")
    if not 10 <= args.duration <= 4 * 3600 or not 5 <= args.interval <= 60:
        parser.error("--duration must be in [10, 14400] s, --interval in [5, 60] s")
    if not 1 <= args.renew_interval <= 60 or not 10 <= args.register_timeout <= 3600:
        parser.error("--renew-interval must be in [1, 60], --register-timeout in [10, 3600]")
    if not 0 <= args.quiet_wait <= 1800:
        parser.error("--quiet-wait must be in [0, 1800]")
    print_report(run(args), args.output, render_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
