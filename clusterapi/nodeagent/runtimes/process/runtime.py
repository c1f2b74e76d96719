"""The process runtime: pods as local processes (see the package docstring for the design)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from clusterapi.nodeagent.runtimes import Report
from clusterapi.nodeagent.runtimes.process import handles, incluster, logs, spec, state
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
    # Mount namespaces for pods' service-account tokens: "auto" tries them, "off" never
    # (``incluster``).
    mount_namespace: str = field(default_factory=incluster.setting)

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
        self.access = incluster.Access(False, "not decided yet")
        self.tokens: list[incluster.ProjectedToken] = []
        self.removed = False  # its directory is being removed: no state written any more
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def containers(self) -> list[ContainerRun]:
        return [*self.init, *self.main]

    def empty_dir(self) -> Path:
        """An empty directory, bound at the service-account path of a container that has
        nothing mounted there."""
        path = self.dir / "kube" / "empty"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def token_for(self, file: Path) -> incluster.ProjectedToken | None:
        """The token the agent issued into ``file``, if it issued one there."""
        wanted = file.resolve()
        return next((t for t in self.tokens if t.file == wanted), None)

    def _publish_tokens(self) -> None:
        """Take over the tokens the volumes were given; without mount namespaces each also
        gets an ``ExecCredential`` copy, which the containers' kubeconfigs print."""
        self.tokens = self.resolver.tokens
        if self.access.namespace:
            return
        for index, token in enumerate(self.tokens):
            token.credential = self.dir / "kube" / f"credential-{index}.json"
            incluster.write_atomic(token.credential, incluster.exec_credential(token))

    async def _keep_tokens_fresh(self) -> None:
        await incluster.keep_fresh(
            self.runtime.api, self.pod, self.tokens, self.sleep, lambda: self.stopping
        )

    def container(self, name: str) -> ContainerRun | None:
        return next((c for c in self.containers() if c.name == name), None)

    def snapshot(self) -> state.PodState:
        """What the state file keeps of this pod (``state``)."""
        return state.PodState(
            uid=self.uid,
            namespace=self.namespace,
            name=self.name,
            grace=self.grace_seconds,
            ports_since=self.ports_since,
            host_ports=list(self.host_ports),
            ports={c.name: dict(c.ports) for c in self.containers() if c.ports},
            numbers={
                c.name: {str(k): v for k, v in c.by_number.items()}
                for c in self.containers()
                if c.by_number
            },
            containers={c.name: c.record() for c in self.containers()},
        )

    def save(self) -> None:
        """Write the state file, for an agent that starts after this one (``state``). Not
        once the pod stops: a stopping agent leaves the last runs recorded as they were, and
        their shims tell the next agent how they ended."""
        if self.stopping or self.removed:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            state.save(self.dir / state.STATE_FILE, self.snapshot())
        except OSError as exc:
            logger.warning("pod %s: cannot write its state: %s", self.key, exc)

    def _restore(self, leftover: state.PodState) -> None:
        """Take the host ports and container records an earlier agent left."""
        self.ports_since = leftover.ports_since
        self.host_ports = list(leftover.host_ports)
        for run in self.containers():
            run.ports = dict(leftover.ports.get(run.name) or {})
            run.by_number = {int(k): v for k, v in (leftover.numbers.get(run.name) or {}).items()}
            self.runtime.reserve_ports(run.ports.values())
            record = leftover.containers.get(run.name)
            if record is not None and record.init == run.init:
                run.leftover = record

    async def publish(self) -> None:
        """Report every container's status (one report at a time)."""
        if self.stopping:
            return
        self.save()
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
        self._set_base_env()
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

    async def _reuse_volumes(self) -> bool:
        """The volumes an earlier agent materialized, taken as they are (False: one is
        missing). They are not written again: adopted processes use them, a bind mount of a
        token directory among them, which a new directory in its place would leave behind.
        Service-account tokens are read back, with their lifetimes from their own claims,
        and refreshed from there on (``_keep_tokens_fresh``) into the same files."""
        self._set_base_env()
        volumes_dir = self.dir / "volumes"
        for volume in (self.pod.get("spec") or {}).get("volumes") or ():
            name = str(volume.get("name"))
            if "hostPath" in volume or "emptyDir" in volume:
                # Nothing is rewritten for these: a directory is made when missing, no more.
                self.volumes[name] = await spec.materialize(self.resolver, volume, volumes_dir)
                continue
            target = volumes_dir / name
            if not target.is_dir():
                return False
            self.volumes[name] = target
            for source in (volume.get("projected") or {}).get("sources") or ():
                token_spec = source.get("serviceAccountToken")
                if token_spec is not None:
                    file = (target / str(token_spec.get("path") or "token")).resolve()
                    self.resolver.tokens.append(_token_from_file(token_spec, file))
        return True

    def _set_base_env(self) -> None:
        self.base_env = {
            key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in os.environ
        }
        self.base_env["HOSTNAME"] = self.name
        api = self.runtime.api
        if api.server_host:
            self.base_env["KUBERNETES_SERVICE_HOST"] = api.server_host
            self.base_env["KUBERNETES_SERVICE_PORT"] = api.server_port
            self.base_env["KUBERNETES_SERVICE_PORT_HTTPS"] = api.server_port

    async def run(self) -> None:
        """Init containers in order, then the containers until the restart policy is done.
        A pod an earlier agent on this data dir ran (``ProcessRuntime.leftovers``) keeps its
        host ports and volumes, and its containers resume (``ContainerRun.resume``)."""
        leftover = self.runtime.leftovers.pop(self.uid, None)
        self.access = await self.runtime.access()
        if leftover is not None:
            self._restore(leftover)
            if not await self._reuse_volumes():
                await self._prepare()
        else:
            self._allocate_ports()
            for run in self.main:
                run.waiting("PodInitializing" if self.init else "ContainerCreating")
            await self.publish()
            await self._prepare()
        self.save()
        self._publish_tokens()
        refresher = asyncio.create_task(self._keep_tokens_fresh())
        try:
            for run in self.init:
                code = await run.loop(self.policy, self.sleep)
                if code != 0 or self.stopping:
                    await self.publish()
                    return  # a Never pod failed (the others keep retrying inside the loop)
            for run in self.main:
                if run.leftover is None:
                    run.waiting("ContainerCreating")
            await asyncio.gather(*(run.loop(self.policy, self.sleep) for run in self.main))
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)

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
        self._access: incluster.Access | None = None
        self._access_lock = asyncio.Lock()
        # Pods an earlier agent on this data dir ran, until each is run again or discarded.
        self.leftovers: dict[str, state.PodState] = {}
        self._discarding: set[asyncio.Task[None]] = set()
        self._lock_fd = -1

    @property
    def host_ip(self) -> str:
        """The node's address (also every pod's: pods share the host's network)."""
        return self.options.host_ip

    @property
    def pod_ip(self) -> str:
        return self.options.host_ip

    async def access(self) -> incluster.Access:
        """How pods reach their service-account tokens: tried once, on the first pod."""
        async with self._access_lock:
            if self._access is None:
                self._access = await incluster.decide(
                    self.options.data_dir / "incluster", self.options.mount_namespace
                )
                if self._access.namespace:
                    logger.info(
                        "pods get a mount namespace each: tokens at %s", incluster.MOUNT_PATH
                    )
                else:
                    # Worth an operator's notice: clients that insist on the standard path
                    # (load_incluster_config) cannot work in these pods.
                    logger.warning(
                        "no mount namespaces for pods (%s): in-cluster clients get KUBECONFIG",
                        self._access.reason,
                    )
            return self._access

    def lock_data_dir(self) -> None:
        """Hold the data dir for this agent alone (``flock`` of ``agent.lock``, released by
        the kernel however the agent ends): a second agent on it would take over processes
        the first still runs, and both would restart them. Raises ``RuntimeError``."""
        if self._lock_fd >= 0:
            return
        path = self.options.data_dir / "agent.lock"
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RuntimeError(
                f"another node agent runs on {self.options.data_dir}: stop it first, or give "
                "this one another --data-dir"
            ) from None
        self._lock_fd = descriptor

    def load_leftovers(self) -> int:
        """Read the pods an earlier agent on this data dir left (``state``); how many."""
        self.leftovers = state.load_all(self.pods_dir)
        return len(self.leftovers)

    def sync_pods(self, running: set[str], listed: set[str]) -> None:
        """The agent's word, after each list of its pods, on which it runs (``running``)
        and which exist at all (``listed``): the processes of any other pod an earlier agent
        left are stopped; the directory of a pod that no longer exists is removed (one still
        listed, finished, keeps its logs)."""
        for uid in [u for u in self.leftovers if u not in running]:
            leftover = self.leftovers.pop(uid)
            forget = "pod" if uid not in listed else "state"
            self._discard_soon(leftover, leftover.grace, forget)

    def _discard_soon(self, leftover: state.PodState, grace: float, forget: str) -> None:
        task = asyncio.create_task(self._discard(leftover, grace, forget))
        self._discarding.add(task)
        task.add_done_callback(self._discarding.discard)

    async def _discard(self, leftover: state.PodState, grace: float, forget: str) -> None:
        """Stop what is left of a pod's processes (SIGTERM to each container's group,
        SIGKILL after ``grace``), then forget the ``"pod"`` (its directory), its
        ``"state"`` file, or nothing (``""``: the next agent restarts it, counting the
        restart)."""
        pod_dir = self.pods_dir / leftover.uid

        async def stop(name: str) -> None:
            process = handles.find(pod_dir / "run" / name)
            if process is None:
                return
            if process.alive():
                logger.info(
                    "pod %s/%s: stopping container %s (pid %d) left by an earlier agent",
                    leftover.namespace,
                    leftover.name,
                    name,
                    process.pid,
                )
                process.signal_group(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), max(grace, 0.0))
                except TimeoutError:
                    process.signal_group(signal.SIGKILL)
                    await process.wait()
            process.signal_group(signal.SIGKILL)  # what it left in its group

        names = [n for n, record in leftover.containers.items() if record.run is not None]
        await asyncio.gather(*(stop(name) for name in names))
        if forget == "pod":
            await asyncio.to_thread(shutil.rmtree, pod_dir, True)
        elif forget == "state":
            state.remove(pod_dir / state.STATE_FILE)

    def reserve_port(self) -> int:
        """A free host port no other pod of this agent holds."""
        while True:
            port = free_port()
            if port not in self._reserved:
                self._reserved.add(port)
                return port

    def reserve_ports(self, ports: Iterable[int]) -> None:
        """Hold host ports a resumed pod keeps."""
        self._reserved.update(ports)

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

        self.lock_data_dir()
        if self.load_leftovers():
            logger.info(
                "%d pod(s) left by an earlier agent on this data dir: resumed when still bound "
                "here, else stopped",
                len(self.leftovers),
            )
        await self.access()  # decided (and logged) at start, not with the first pod
        server = urlsplit(agent.options.server)
        if agent.options.insecure:
            # Pods are told to reach the API at this URL's host and verify its certificate
            # against the projected CA: unchecked here, that may fail in them.
            logger.warning(
                "TLS verification is off: in-cluster clients in pods verify the server's "
                "certificate for %s and may fail",
                server.hostname,
            )
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
        down with it (the pods it ran were cancelled before; here also those of an earlier
        agent it has not taken over yet), so none is left running unwatched. Their state
        stays: the next agent on this data dir restarts them, each restart counted."""
        if self._server is not None:
            await self._server.close()
        leftovers, self.leftovers = list(self.leftovers.values()), {}
        for leftover in leftovers:
            self._discard_soon(leftover, 0.0, "")
        await asyncio.gather(*self._discarding, return_exceptions=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

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
            run.removed = True
        leftover = self.leftovers.pop(uid, None)
        if leftover is not None:  # deleted while no agent ran it
            await self._discard(leftover, grace_seconds, "")
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


def _token_from_file(token_spec: Obj, file: Path) -> incluster.ProjectedToken:
    """A service-account token an earlier agent wrote, with its issue and expiry times read
    from its own claims (unverified: only to schedule its refresh). A token that cannot be
    read is taken as expired: refreshed at once."""
    text, issued, expires = "", 0.0, 0.0
    with contextlib.suppress(OSError, ValueError, TypeError, LookupError, AttributeError):
        text = file.read_text().strip()
        payload = text.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        issued, expires = float(claims["iat"]), float(claims["exp"])
    return incluster.ProjectedToken(
        spec=token_spec, token=text, issued=issued, expires=expires, file=file
    )


async def _no_api(path: str) -> Obj | None:
    raise RuntimeError("the process runtime has no API access before the agent attaches it")


async def _no_api_post(path: str, body: Obj) -> Obj:
    raise RuntimeError("the process runtime has no API access before the agent attaches it")


Sleep = Callable[[float], Awaitable[None]]
