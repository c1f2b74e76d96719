"""The control-loop benchmark: a Deployment of N replicas, from create to all pods Running.

    python bench/workloads.py [--replicas 1000] [--nodes 100] [--broker embedded|redis]
                              [--database sqlite|postgres] [--output text|json]
                              [--profile DIR]

What runs is the platform as a user starts it: one ``manage.py up`` (API, Celery worker and
beat; through ``tests/live.py``: its own data directory and loopback port), and one simulated
node agent (``manage.py nodeagent --runtime simulated --nodes K``, pods start at once) that
joins with a bootstrap token. With ``--broker redis`` a private ``redis-server`` is started
on a free loopback port and the platform runs on it (broker and cache), as in production;
the default is the embedded broker ``up`` uses without ``REDIS_URL``.

The measurement: a watch on the namespace's pods is opened, the Deployment is created
through the API, and the watch records when each pod appeared, was bound to a node and was
reported Running. Printed: the time until all N pods existed, were bound, were Running (the
goal: all Running within 10 s for 1,000 replicas), the rates, and the CPU used meanwhile by
the API process, the Celery worker and beat, and the agent. Every wait is bounded; the
script stops what it started and removes its data directory. With ``--profile DIR`` py-spy
samples the API process and the Celery worker from the Deployment's create to the last pod
Running, and a summary of their hot functions is written to ``DIR/summary.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import platform
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from common import (
    DEFAULT_POSTGRES,
    ROOT,
    Profiler,
    condition_status,
    load_average,
    logger,
    profile_directory,
    report_date,
    tally_profiles,
    tree_cpu_seconds,
)

sys.path.insert(0, str(ROOT))

from tests.live import LiveServer, celery_worker_pid, free_port  # needs ROOT on sys.path (above)

NAMESPACE = "bench-workloads"
# The longest the rollout may take before the run gives up and reports what it saw.
ROLLOUT_LIMIT_SECONDS = 600.0


_log = logger("workloads")


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (live and reaped)."""
    return sum(tree_cpu_seconds(pid))


@dataclass
class Api:
    """Bearer-token HTTPS requests to the live server."""

    port: int
    token: str
    context: ssl.SSLContext

    def connection(self, timeout: float = 30.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=timeout
        )

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = self.connection()
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
            data = None
            if body is not None:
                data = orjson.dumps(body)
                headers["Content-Type"] = "application/json"
            conn.request(method, path, data, headers)
            response = conn.getresponse()
            payload = response.read()
            return response.status, orjson.loads(payload) if payload else None
        finally:
            conn.close()


@dataclass
class PodTimes:
    """When each pod was first seen, bound and Running (monotonic seconds)."""

    created: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def see(self, pod: dict[str, Any], now: float, target: int) -> None:
        name = pod["metadata"]["name"]
        with self.lock:
            self.created.setdefault(name, now)
            if pod.get("spec", {}).get("nodeName"):
                self.bound.setdefault(name, now)
            if (pod.get("status") or {}).get("phase") == "Running":
                self.running.setdefault(name, now)
            if len(self.running) >= target:
                self.done.set()


def watch_pods(api: Api, resource_version: str, times: PodTimes, target: int) -> None:
    """Follow the namespace's pods until ``target`` are Running (or the connection ends)."""
    conn = api.connection(timeout=ROLLOUT_LIMIT_SECONDS + 60)
    path = (
        f"/api/v1/namespaces/{NAMESPACE}/pods?watch=true&resourceVersion={resource_version}"
        f"&timeoutSeconds={int(ROLLOUT_LIMIT_SECONDS) + 30}"
    )
    conn.request("GET", path, headers={"Authorization": f"Bearer {api.token}"})
    response = conn.getresponse()
    buffer = b""
    try:
        while not times.done.is_set():
            chunk = response.read1(65536)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            now = time.monotonic()
            for line in lines:
                if line.strip():
                    event = orjson.loads(line)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        times.see(event["object"], now, target)
    finally:
        conn.close()


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port; yields its URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def start_agent(server: LiveServer, nodes: int, log: Path) -> subprocess.Popen[bytes]:
    token = server.manage("token", "create", "--description", "bench").strip().splitlines()[-1]
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "nodeagent",
            "--server",
            server.url,
            "--token",
            token,
            "--name",
            "bench",
            "--runtime",
            "simulated",
            "--nodes",
            str(nodes),
            "--ca-file",
            str(server.ca_file),
            "--pod-start-delay",
            "0",
        ],
        cwd=ROOT,
        env=server.env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def ready_nodes(api: Api) -> int:
    status, body = api.request("GET", "/api/v1/nodes")
    if status != 200:
        return 0
    return sum(1 for node in body["items"] if condition_status(node) == "True")


def deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": "bench"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ]
                },
            },
        },
    }


def measure(args: argparse.Namespace, server: LiveServer, work: Path) -> dict[str, Any]:
    assert server.process is not None
    context = ssl.create_default_context(cafile=str(server.ca_file))
    api = Api(server.port, server.admin_token(), context)
    agent = start_agent(server, args.nodes, work / "agent.log")
    try:
        deadline = time.monotonic() + 180
        while ready_nodes(api) < args.nodes and time.monotonic() < deadline:
            time.sleep(1.0)
        nodes = ready_nodes(api)
        if nodes < args.nodes:
            raise RuntimeError(f"only {nodes} of {args.nodes} nodes became Ready")
        _log(f"{nodes} nodes Ready")
        status, _ = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        if status not in (200, 201):
            raise RuntimeError(f"cannot create the namespace: {status}")
        time.sleep(3.0)  # let the control loops settle after the nodes joined
        status, listing = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")
        times = PodTimes()
        watcher = threading.Thread(
            target=watch_pods,
            args=(api, listing["metadata"]["resourceVersion"], times, args.replicas),
            daemon=True,
        )
        watcher.start()
        time.sleep(0.5)
        cpu_before = {
            "server": _cpu_seconds(server.process.pid),
            "agent": _cpu_seconds(agent.pid),
        }
        profiler = Profiler(args.profile_dir, rate=100, options=("--gil",))
        with contextlib.ExitStack() as sampling:
            sampling.enter_context(profiler.sample(server.process.pid, "api"))
            if args.profile_dir is not None:
                worker = celery_worker_pid(server)
                sampling.enter_context(profiler.sample(worker, "worker"))
            _log(f"creating a Deployment of {args.replicas}")
            start = time.monotonic()
            status, _ = api.request(
                "POST",
                f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
                deployment(args.replicas),
            )
            if status != 201:
                raise RuntimeError(f"cannot create the Deployment: {status}")
            finished = times.done.wait(ROLLOUT_LIMIT_SECONDS)
            wall = time.monotonic() - start
        cpu = {
            "server_and_loops": _cpu_seconds(server.process.pid) - cpu_before["server"],
            "agent": _cpu_seconds(agent.pid) - cpu_before["agent"],
        }
    finally:
        agent.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            agent.wait(timeout=20)
        if agent.poll() is None:
            agent.kill()

    def last(moments: dict[str, float]) -> float | None:
        return round(max(moments.values()) - start, 2) if len(moments) >= args.replicas else None

    return {
        "replicas": args.replicas,
        "nodes": args.nodes,
        "completed": finished,
        "seconds_all_created": last(times.created),
        "seconds_all_bound": last(times.bound),
        "seconds_all_running": last(times.running),
        "pods_seen": len(times.created),
        "pods_running": len(times.running),
        "wall_seconds": round(wall, 2),
        "cpu_seconds": {k: round(v, 1) for k, v in cpu.items()},
    }


def render(report: dict[str, Any]) -> str:
    r = report["result"]
    lines = [
        f"Berth workload benchmark — {report['date']} — {report['database']}, "
        f"{report['broker']} broker",
        f"machine: {report['machine']}; load average before start: {report['load_before']}",
        f"a Deployment of {r['replicas']} replicas on {r['nodes']} simulated nodes",
        "",
    ]
    for label, key in (
        ("all pods created (s)", "seconds_all_created"),
        ("all pods bound (s)", "seconds_all_bound"),
        ("all pods Running (s)", "seconds_all_running"),
    ):
        value = r[key]
        lines.append(f"{label:<28}{value if value is not None else 'not reached':>12}")
    if r["seconds_all_running"]:
        rate = r["replicas"] / r["seconds_all_running"]
        lines.append(f"{'pods Running per second':<28}{rate:>12.0f}")
        goal = "MET" if r["seconds_all_running"] <= 10 and r["replicas"] >= 1000 else "NOT MET"
        lines.append(f"goal (1,000 replicas all Running in <= 10 s): {goal}")
    else:
        lines.append(f"pods Running at the limit: {r['pods_running']} of {r['replicas']}")
    cpu = r["cpu_seconds"]
    lines.append(
        f"CPU seconds meanwhile: API + worker + beat {cpu['server_and_loops']}, "
        f"agent {cpu['agent']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--broker", choices=("embedded", "redis"), default="embedded")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("--profile", metavar="DIR", help="sample API and worker with py-spy")
    args = parser.parse_args(argv)
    args.profile_dir = profile_directory(args.profile)
    if not 1 <= args.replicas <= 20000 or not 1 <= args.nodes <= 5000:
        parser.error("--replicas must be in [1, 20000] and --nodes in [1, 5000]")
    work = Path(tempfile.mkdtemp(prefix="berth-workloads-"))
    if args.database == "postgres":
        os.environ.setdefault("DATABASE_URL", DEFAULT_POSTGRES)
    else:
        os.environ.pop("DATABASE_URL", None)
    report: dict[str, Any] = {
        "date": report_date(),
        "machine": (
            f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
        ),
        "load_before": load_average(),
        "database": args.database,
        "broker": args.broker,
    }
    try:
        with contextlib.ExitStack() as stack:
            server = LiveServer(work / "data")
            server.data_dir.mkdir()
            if args.broker == "redis":
                server.env = {"REDIS_URL": stack.enter_context(redis_server(work))}
            server.start()
            stack.callback(server.stop)
            report["result"] = measure(args, server, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(orjson.dumps(report).decode() if args.output == "json" else render(report))
    if args.profile_dir is not None:
        summarize(args.profile_dir)
    return 0


def summarize(directory: Path, top: int = 30) -> None:
    """Per sampled process, the functions most often on the stack (inclusive share)."""
    lines: list[str] = []
    for name, tally in tally_profiles(directory):
        lines.append(f"== {name}: {tally.samples} samples (the thread holding the GIL)")
        lines += [f"  {pct:5.1f}  {f}" for f, pct in tally.shares(tally.inclusive.most_common(top))]
        lines.append("  self %:")
        lines += [f"  {pct:5.1f}  {f}" for f, pct in tally.shares(tally.own.most_common(top))]
    (directory / "summary.txt").write_text("\n".join(lines) + "\n")
    print(f"profile summary: {directory / 'summary.txt'}")


if __name__ == "__main__":
    raise SystemExit(main())
