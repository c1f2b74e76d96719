"""The agent's half of resource metrics: sample the nodes and containers, push one batch.

Every ``AgentOptions.metrics_interval`` seconds (``BERTH_METRICS_INTERVAL_SECONDS``, 15 s by
default, as the kubelet's housekeeping and metrics-server's resolution) the agent asks its
runtime's sampler for one entry per node and sends them all in one
``POST /apis/metrics.berth.dev/v1/samples`` with its first node's credential; entries for its
other nodes are signed with theirs (``clusterapi.metrics.signing``; the server's side is
``clusterapi.metrics.ingest``). A batch that fails is dropped, not retried: the next one is
due soon, and old figures are worth little.

Samplers
--------
* ``ProcessSampler`` (process runtime): per running container, the CPU seconds (user and
  system, with those of reaped children) of its process tree — the process group leader and
  its descendants — and their resident memory (RSS, the working set's stand-in); CPU is
  reported as the mean over the window in nanocores, from the difference between two
  readings (the first from the process's start). The node: ``psutil.cpu_percent`` times cores
  and used memory (total minus available).
* ``SimulatedSampler`` (simulated runtime): nothing runs, so the figures are made up, but
  plausibly: each running container uses ``BERTH_SIM_METRICS_FRACTION`` (0.4) of its
  requests (a small default without requests) with ±25 % jitter; a node uses the sum of its
  pods plus a little for the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson
import psutil

from clusterapi.metrics import signing

if TYPE_CHECKING:
    from clusterapi.nodeagent.agent import NodeAgent

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

SAMPLES_PATH = "/apis/metrics.berth.dev/v1/samples"
API_VERSION = "metrics.berth.dev/v1"
# Stay well below the API server's request body limit (Django's 2.5 MB default).
MAX_BATCH_BYTES = 1_500_000
# Simulated figures for containers without requests, and the system's share of a node.
SIM_DEFAULT_CPU = 10_000_000  # 10m
SIM_DEFAULT_MEMORY = 32 * 1024 * 1024
SIM_SYSTEM_CPU = 100_000_000  # 100m
SIM_SYSTEM_MEMORY = 512 * 1024 * 1024
PAGE = 4096


def default_interval() -> float:
    """Seconds between samples (``BERTH_METRICS_INTERVAL_SECONDS``; 0 turns sampling off)."""
    return float(os.environ.get("BERTH_METRICS_INTERVAL_SECONDS") or 15.0)


class Sampler(Protocol):
    """Measures an agent's nodes: one entry per node (``node``, ``time``, ``window``,
    ``cpu``, ``memory``, ``pods``), as ``clusterapi.metrics.ingest`` reads them."""

    def sample(self, agent: NodeAgent) -> list[Obj]:
        """Take one sample of every node of ``agent`` (blocking; runs off the event loop)."""
        ...


# --- the process runtime ----------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_usage(pid: int) -> tuple[float, int, float]:
    """(CPU seconds, resident bytes, start time) of a process and its descendants."""
    procs = _tree(pid)
    cpu = 0.0
    memory = 0
    for index, proc in enumerate(procs):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            cpu += times.user + times.system
            if index == 0:
                # Children the leader has waited for: their time stays in the tree's account.
                cpu += times.children_user + times.children_system
            memory += proc.memory_info().rss
    return cpu, memory, procs[0].create_time()


class ProcessSampler:
    """Real figures of a process-runtime node (see the module docstring)."""

    def __init__(self) -> None:
        # (pod uid, container, pid, start) → (CPU seconds, wall time) at the last sample.
        self._previous: dict[tuple[str, str, int, float], tuple[float, float]] = {}
        self._node_time = time.time()
        psutil.cpu_percent(interval=None)  # the first reading only starts the window

    def _container(
        self, key: tuple[str, str], pid: int, now: float, seen: set[Any]
    ) -> tuple[int, int, float] | None:
        try:
            cpu, memory, started = tree_usage(pid)
        except psutil.Error:
            return None
        ident = (*key, pid, started)
        seen.add(ident)
        before_cpu, before_time = self._previous.get(ident, (0.0, started))
        self._previous[ident] = (cpu, now)
        window = max(now - before_time, 1e-3)
        nanocores = int(max(cpu - before_cpu, 0.0) / window * 1e9)
        return nanocores, memory, window

    def sample(self, agent: NodeAgent) -> list[Obj]:
        """One entry: the node (host) and every running container of its pods."""
        runtime: Any = agent.runtime
        now = time.time()
        seen: set[Any] = set()
        pods = []
        window = now - self._node_time
        for run in list(runtime.runs.values()):
            containers = []
            pod_window = 0.0
            for container in run.main:
                process = container.process
                if not container.running or process is None:
                    continue
                measured = self._container((run.uid, container.name), process.pid, now, seen)
                if measured is None:
                    continue
                cpu, memory, span = measured
                pod_window = max(pod_window, min(span, window) if window > 0 else span)
                containers.append({"name": container.name, "cpu": cpu, "memory": memory})
            if containers:
                pods.append(
                    {
                        "namespace": run.namespace,
                        "name": run.name,
                        "uid": run.uid,
                        "window": round(max(pod_window, 0.001), 3),
                        "containers": containers,
                    }
                )
        self._previous = {k: v for k, v in self._previous.items() if k in seen}
        cores = psutil.cpu_count() or 1
        busy = psutil.cpu_percent(interval=None) / 100.0 * cores
        memory = psutil.virtual_memory()
        self._node_time = now
        return [
            {
                "node": name,
                "time": round(now, 3),
                "window": round(max(window, 0.001), 3),
                "cpu": int(busy * 1e9),
                "memory": int(memory.total - memory.available),
                "pods": pods if index == 0 else [],
            }
            for index, name in enumerate(agent.nodes)
        ]


# --- the simulated runtime --------------------------------------------------------------------


def _requests(container: Obj) -> tuple[int, int]:
    from clusterapi.scheduler import quantity

    requests = (container.get("resources") or {}).get("requests") or {}
    cpu = SIM_DEFAULT_CPU
    memory = SIM_DEFAULT_MEMORY
    with contextlib.suppress(ValueError, TypeError, ArithmeticError):
        if requests.get("cpu") is not None:
            cpu = int(quantity.parse(str(requests["cpu"])) * 1_000_000_000)
    with contextlib.suppress(ValueError, TypeError, ArithmeticError):
        if requests.get("memory") is not None:
            memory = int(quantity.parse(str(requests["memory"])))
    return cpu, memory


class SimulatedSampler:
    """Plausible made-up figures for simulated nodes (see the module docstring)."""

    def __init__(self, fraction: float | None = None, seed: int | None = None) -> None:
        self.fraction = (
            fraction
            if fraction is not None
            else float(os.environ.get("BERTH_SIM_METRICS_FRACTION") or 0.4)
        )
        self._random = random.Random(seed)  # noqa: S311 - simulation, not crypto
        self._last = time.time()

    def _jitter(self, value: float) -> float:
        return value * self._random.uniform(0.75, 1.25)

    def sample(self, agent: NodeAgent) -> list[Obj]:
        now = time.time()
        window = round(max(now - self._last, 0.001), 3)
        self._last = now
        out = []
        for node in agent.nodes.values():
            pods = []
            node_cpu = self._jitter(SIM_SYSTEM_CPU)
            node_memory = self._jitter(SIM_SYSTEM_MEMORY)
            for worker in list(node.pods.values()):
                reported = worker.reported or {}
                if reported.get("phase") != "Running" or worker.stopping:
                    continue
                meta = worker.pod.get("metadata") or {}
                containers = []
                for spec in (worker.pod.get("spec") or {}).get("containers") or ():
                    cpu_request, memory_request = _requests(spec)
                    cpu = int(self._jitter(cpu_request * self.fraction))
                    memory = int(self._jitter(memory_request * self.fraction)) // PAGE * PAGE
                    containers.append({"name": str(spec.get("name")), "cpu": cpu, "memory": memory})
                    node_cpu += cpu
                    node_memory += memory
                if containers:
                    pods.append(
                        {
                            "namespace": str(meta.get("namespace") or "default"),
                            "name": str(meta.get("name")),
                            "uid": str(meta.get("uid") or ""),
                            "window": window,
                            "containers": containers,
                        }
                    )
            out.append(
                {
                    "node": node.name,
                    "time": round(now, 3),
                    "window": window,
                    "cpu": int(node_cpu),
                    "memory": int(node_memory) // PAGE * PAGE,
                    "pods": pods,
                }
            )
        return out


def sampler_for(runtime: Any) -> Sampler | None:
    """The sampler of a runtime, by its name (None: the runtime reports no metrics)."""
    if getattr(runtime, "name", "") == "process":
        return ProcessSampler()
    if getattr(runtime, "name", "") == "simulated":
        return SimulatedSampler()
    return None


# --- pushing ----------------------------------------------------------------------------------


def sign_entries(agent: NodeAgent, entries: list[Obj], keys: dict[str, bytes]) -> None:
    """Sign every entry but the first node's (whose token authenticates the request)."""
    first = next(iter(agent.nodes))
    for entry in entries:
        name = entry["node"]
        if name == first:
            continue
        key = keys.get(name)
        if key is None:
            key = keys[name] = signing.key_from_token(agent.nodes[name].token)
        entry[signing.SIGNATURE_FIELD] = signing.sign(key, entry)


def batches(entries: list[Obj]) -> list[list[Obj]]:
    """Entries split so that no request body passes ``MAX_BATCH_BYTES`` (one, usually)."""
    out: list[list[Obj]] = [[]]
    size = 0
    for entry in entries:
        length = len(orjson.dumps(entry))
        if out[-1] and size + length > MAX_BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(entry)
        size += length
    return out


async def push_once(agent: NodeAgent, sampler: Sampler, keys: dict[str, bytes]) -> int:
    """Sample and report once; returns how many node entries the server accepted."""
    entries = await asyncio.to_thread(sampler.sample, agent)
    if not entries:
        return 0
    sign_entries(agent, entries, keys)
    token = next(iter(agent.nodes.values())).token
    accepted = 0
    for batch in batches(entries):
        body = {"apiVersion": API_VERSION, "kind": "SampleBatch", "items": batch}
        answer = await agent.request("POST", SAMPLES_PATH, token, body)
        accepted += int((answer.get("status") or {}).get("nodes") or 0)
    return accepted


async def run(agent: NodeAgent) -> None:
    """Report every ``agent.options.metrics_interval`` seconds until the agent stops."""
    from clusterapi.nodeagent.agent import ApiError

    interval = float(getattr(agent.options, "metrics_interval", 0) or 0)
    sampler = sampler_for(agent.runtime)
    if interval <= 0 or sampler is None or not agent.nodes:
        return
    keys: dict[str, bytes] = {}
    stopped = asyncio.ensure_future(agent.wait_stopped())
    loop = asyncio.get_running_loop()
    try:
        while not stopped.done():
            started = loop.time()
            try:
                accepted = await push_once(agent, sampler, keys)
                agent.stats["metrics_reports"] = agent.stats.get("metrics_reports", 0) + 1
                logger.debug("metrics: %d node sample(s) accepted", accepted)
            except (ApiError, httpx.HTTPError) as exc:
                agent.stats["metrics_errors"] = agent.stats.get("metrics_errors", 0) + 1
                logger.warning("metrics report failed: %s", exc)
            except Exception:
                logger.exception("metrics sampling failed")
            delay = max(interval - (loop.time() - started), 0.05)
            await asyncio.wait({stopped}, timeout=delay)
    finally:
        stopped.cancel()
