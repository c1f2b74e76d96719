"""The process runtime: pods as local processes (see the package docstring for the design)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psutil

from clusterapi.nodeagent.runtimes import Report
from clusterapi.nodeagent.runtimes.process import logs, spec
from clusterapi.nodeagent.runtimes.process.container import ContainerRun

if TYPE_CHECKING:
    from clusterapi.nodeagent.agent import NodeAgent

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

RUNTIME_VERSION = "berth-process://0.1.0"
HOST_PORTS_CONDITION = "berth.dev/HostPorts"
DEFAULT_GRACE = 30.0


def _backoff_base() -> float:
    return float(os.environ.get("BERTH_BACKOFF_BASE_SECONDS") or 10.0)


@dataclass
class ProcessOptions:
    """Agent-wide settings of the process runtime."""

    data_dir: Path
    host_ip: str = "127.0.0.1"
    bind_host: str = "127.0.0.1"
    port: int = 0
    backoff_base: float = field(default_factory=_backoff_base)
    backoff_max: float = 0.0  # 0: 30 times backoff_base (10 s → 300 s, as upstream)
    memory_poll: float = 0.25
    log_max_bytes: int = logs.DEFAULT_MAX_BYTES
    log_keep: int = logs.DEFAULT_KEEP
    cancel_grace: float = 2.0

    def __post_init__(self) -> None:
        if self.backoff_max <= 0:
            self.backoff_max = 30 * self.backoff_base


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


class PodRun:
    """One pod: its directory, volumes, containers and their statuses."""

    def __init__(self, runtime: ProcessRuntime, pod: Obj, report: Report) -> None:
        self.runtime = runtime
        self.pod = pod
        self.report = report
        meta = pod["metadata"]
        self.uid = str(meta["uid"])
        self.name = str(meta.get("name"))
        self.namespace = str(meta.get("namespace") or "default")
        self.key = f"{self.namespace}/{self.name}"
        self.dir = runtime.pods_dir / self.uid
        pod_spec = pod.get("spec") or {}
        self.policy = str(pod_spec.get("restartPolicy") or "Always")
        grace = pod_spec.get("terminationGracePeriodSeconds")
        self.grace_seconds = float(DEFAULT_GRACE if grace is None else grace)
        self.stopping = False
        self.volumes: dict[str, Path] = {}
        self.base_env: dict[str, str] = {}
        self.resolver = spec.Resolver(pod, runtime.api, runtime.pod_ip, runtime.options.host_ip)
        self.init = [ContainerRun(self, c, init=True) for c in pod_spec.get("initContainers") or ()]
        self.main = [ContainerRun(self, c) for c in pod_spec.get("containers") or ()]
        self.host_ports: list[str] = []
        self.ports_since = logs.rfc3339nano()[:19] + "Z"
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def containers(self) -> list[ContainerRun]:
        return [*self.init, *self.main]

    def container(self, name: str) -> ContainerRun | None:
        return next((c for c in self.containers() if c.name == name), None)

    async def publish(self) -> None:
        """Report every container's status (one report at a time)."""
        if self.stopping:
            return
        async with self._lock:
            await self.report([c.status for c in self.init], [c.status for c in self.main])

    async def sleep(self, seconds: float) -> None:
        """Sleep, waking early when the pod stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), None if seconds == float("inf") else seconds)

    def _allocate_ports(self) -> None:
        for run in self.containers():
            for port in run.spec.get("ports") or ():
                number = int(port.get("containerPort") or 0)
                host_port = self.runtime.reserve_port()
                key = str(port.get("name") or number)
                run.ports[key] = host_port
                run.by_number[number] = host_port
                self.host_ports.append(f"{run.name}:{key}={host_port}")

    async def _prepare(self) -> None:
        """The pod's directory and volumes, retried while a reference is missing."""
        self.base_env = {
            key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in os.environ
        }
        self.base_env["HOSTNAME"] = self.name
        api = self.runtime.api
        if api.server_host:
            self.base_env["KUBERNETES_SERVICE_HOST"] = api.server_host
            self.base_env["KUBERNETES_SERVICE_PORT"] = api.server_port
            self.base_env["KUBERNETES_SERVICE_PORT_HTTPS"] = api.server_port
        volumes_dir = self.dir / "volumes"
        volumes_dir.mkdir(parents=True, exist_ok=True)
        while not self.stopping:
            try:
                for volume in (self.pod.get("spec") or {}).get("volumes") or ():
                    self.volumes[str(volume.get("name"))] = await spec.materialize(
                        self.resolver, volume, volumes_dir
                    )
                return
            except spec.ConfigError as exc:
                # Upstream keeps such a pod in ContainerCreating (FailedMount) and retries.
                for run in self.main:
                    run.waiting("ContainerCreating", str(exc))
                await self.publish()
                self.resolver = spec.Resolver(
                    self.pod, self.runtime.api, self.runtime.pod_ip, self.runtime.options.host_ip
                )
                await self.sleep(2.0)

    async def run(self) -> None:
        """Init containers in order, then the containers until the restart policy is done."""
        self._allocate_ports()
        for run in self.main:
            run.waiting("PodInitializing" if self.init else "ContainerCreating")
        await self.publish()
        await self._prepare()
        for run in self.init:
            code = await run.loop(self.policy, self.sleep)
            if code != 0 or self.stopping:
                await self.publish()
                return  # a Never pod failed (the others keep retrying inside the loop)
        for run in self.main:
            run.waiting("ContainerCreating")
        await asyncio.gather(*(run.loop(self.policy, self.sleep) for run in self.main))

    async def stop(self, grace: float) -> None:
        """Stop restarting, then stop every process within ``grace`` seconds."""
        self.stopping = True
        self._wake.set()
        await asyncio.gather(*(run.kill(grace) for run in self.containers()))


class ProcessRuntime:
    """Runs pods as local processes; serves their logs (``logserver``)."""

    name = "process"
    version = RUNTIME_VERSION

    def __init__(self, options: ProcessOptions) -> None:
        self.options = options
        self.pods_dir = options.data_dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.runs: dict[str, PodRun] = {}
        self.api = spec.Api(get=_no_api, post=_no_api_post)
        self.port = 0
        self._reserved: set[int] = set()
        self._server: Any = None

    @property
    def host_ip(self) -> str:
        """The node's address (also every pod's: pods share the host's network)."""
        return self.options.host_ip

    @property
    def pod_ip(self) -> str:
        return self.options.host_ip

    @staticmethod
    def record_pid(path: Path, pid: int) -> None:
        """Remember a running container's process group (``reap_leftovers``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            created = psutil.Process(pid).create_time()
        except psutil.Error:
            return
        path.write_text(f"{pid} {created}\n")

    def reap_leftovers(self) -> int:
        """Kill the process groups an earlier agent on this data dir left running (it was
        killed without stopping its pods): its pods are run afresh, never twice. Returns how
        many were killed; pid files of processes that are gone (or whose pid was reused,
        told by the creation time) are dropped."""
        killed = 0
        for pid_file in self.pods_dir.glob("*/pids/*"):
            try:
                pid_text, created_text = pid_file.read_text().split()
                pid, created = int(pid_text), float(created_text)
                if psutil.Process(pid).create_time() == created:
                    os.killpg(pid, signal.SIGKILL)
                    killed += 1
            except (ValueError, OSError, psutil.Error):
                pass
            pid_file.unlink(missing_ok=True)
        return killed

    def reserve_port(self) -> int:
        """A free host port no other pod of this agent holds."""
        while True:
            port = free_port()
            if port not in self._reserved:
                self._reserved.add(port)
                return port

    async def attach(self, agent: NodeAgent) -> None:
        """Called by the agent once it holds its node credential: API access for
        ConfigMaps, Secrets and tokens, and the log server (its key is the credential)."""
        from clusterapi.nodeagent.agent import ApiError
        from clusterapi.nodeagent.runtimes.process import logserver

        node = next(iter(agent.nodes.values()))
        token = node.token

        async def get(path: str) -> Obj | None:
            try:
                return await agent.request("GET", path, token)
            except ApiError as exc:
                if exc.status == 404:
                    return None
                raise

        async def post(path: str, body: Obj) -> Obj:
            return await agent.request("POST", path, token, body)

        leftovers = self.reap_leftovers()
        if leftovers:
            logger.info("killed %d container process(es) left by an earlier agent", leftovers)
        server = urlsplit(agent.options.server)
        self.api = spec.Api(
            get=get,
            post=post,
            server_host=server.hostname or "",
            server_port=str(server.port or (443 if server.scheme == "https" else 80)),
        )
        self._server = logserver.LogServer(self, node.name, logserver.node_key(token))
        self.port = await self._server.start(self.options.bind_host, self.options.port)

    async def close(self) -> None:
        """Stop the log server, and the containers: an agent that stops takes its processes
        down with it (the next agent on this data dir runs its pods afresh), so none is left
        running unwatched, as a stopped test agent's busy loops once were."""
        if self._server is not None:
            await self._server.close()
        stopped = self.reap_leftovers()
        if stopped:
            logger.info("stopped %d container process group(s) on shutdown", stopped)

    def extra_conditions(self, pod: Obj) -> list[Obj]:
        """The pod condition naming its host ports (``berth.dev/HostPorts``)."""
        run = self.runs.get(str(pod["metadata"]["uid"]))
        if run is None or not run.host_ports:
            return []
        return [
            {
                "type": HOST_PORTS_CONDITION,
                "status": "True",
                "reason": "PortsMapped",
                "message": ",".join(run.host_ports),
                "lastProbeTime": None,
                "lastTransitionTime": run.ports_since,
            }
        ]

    async def run_pod(self, pod: Obj, report: Report) -> None:
        """Run ``pod`` until its containers are done for good (or it is stopped)."""
        run = self.runs[str(pod["metadata"]["uid"])] = PodRun(self, pod, report)
        try:
            await run.run()
        except asyncio.CancelledError:
            if not run.stopping:
                # Dropped without a stop (agent shutdown, pod gone): no orphans.
                self.runs.pop(run.uid, None)
                await run.stop(self.options.cancel_grace)
            raise
        finally:
            for ports in (c.ports.values() for c in run.containers()):
                self._reserved.difference_update(ports)

    async def stop_pod(self, pod: Obj, grace_seconds: float) -> None:
        """Stop a deleted pod's processes (SIGTERM, ``grace_seconds``, SIGKILL) and remove
        its directory (volumes and logs)."""
        uid = str(pod["metadata"]["uid"])
        run = self.runs.pop(uid, None)
        if run is not None:
            await run.stop(grace_seconds)
        path = self.pods_dir / uid
        if path.is_dir():
            await asyncio.to_thread(shutil.rmtree, path, True)

    def log_source(
        self, uid: str, container: str, previous: bool
    ) -> tuple[Path, Callable[[], bool]] | str:
        """The log file to serve and whether it is still written; or why there is none."""
        run = self.runs.get(uid)
        current = run.container(container) if run is not None else None
        restarts = logs.runs(self.pods_dir, uid, container)
        if current is not None:
            count = current.restart_count
            if previous:
                earlier = [r for r in restarts if r < count]
                if not earlier:
                    return "previous"
                return current.log_path(earlier[-1]), lambda: False
            if count not in restarts:
                state = current.status.get("state") or {}
                reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
                return f"waiting:{reason}"
            path = current.log_path(count)

            def live() -> bool:
                return current.running and current.restart_count == count

            return path, live
        if not restarts or (previous and len(restarts) < 2):
            return "previous" if previous else "waiting:ContainerCreating"
        chosen = restarts[-2] if previous else restarts[-1]
        return logs.log_path(self.pods_dir, uid, container, chosen), lambda: False


async def _no_api(path: str) -> Obj | None:
    raise RuntimeError("the process runtime has no API access before the agent attaches it")


async def _no_api_post(path: str, body: Obj) -> Obj:
    raise RuntimeError("the process runtime has no API access before the agent attaches it")


Sleep = Callable[[float], Awaitable[None]]
