"""The node agent: K nodes (one for a real machine) served from one asyncio loop over HTTP.

Flow
----
1. **Join**: a bootstrap token (``<id>.<secret>``) is exchanged for one node token per node
   (``POST /apis/node.berth.dev/v1/nodecredentials``, see ``credentials``); any other token
   is used as is for every node (an operator's own credential).
2. **Register** each Node (capacity, allocatable, addresses, nodeInfo, conditions Ready,
   MemoryPressure, DiskPressure, PIDPressure); an existing Node gets its status patched.
3. **Heartbeat** as upstream: the Lease ``kube-node-lease/<node>`` is renewed every
   ``renew_interval`` (10 s; PUT of the cached Lease, re-read on conflict); the Node status is
   checked every ``status_check_interval`` and patched when its conditions differ from what
   the agent reports, or every ``status_report_interval`` (5 min) anyway.
4. **Pods**: one list+watch of the pods bound to its nodes (``fieldSelector=spec.nodeName=
   <node>``; with several nodes ``spec.nodeName!=`` filtered to its own names, so 1,000
   simulated nodes need one watch, not 1,000). Each new pod runs through the runtime; every
   change of its containers is reported through ``pods/<name>/status`` (merge patch, with
   the node's own token, as the Node authorizer requires). A pod marked for deletion is
   stopped and then deleted with ``gracePeriodSeconds=0`` (uid precondition).

All nodes share one ``httpx.AsyncClient`` (bounded connection pool) and one event loop: a
heartbeat is a coroutine sleeping between renewals, so 1,000 nodes cost 1,000 small tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import random
import re
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from clusterapi.nodeagent import metrics as node_metrics
from clusterapi.nodeagent import status as pod_status
from clusterapi.nodeagent.runtimes import Runtime

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

BOOTSTRAP_TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.37.0"
CREDENTIALS_PATH = "/apis/node.berth.dev/v1/nodecredentials"
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_CAPACITY = {
    "cpu": "32",
    "memory": "256Gi",
    "pods": "110",
    "ephemeral-storage": "100Gi",
}

NODE_CONDITIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def micro_time(moment: datetime | None = None) -> str:
    """A ``metav1.MicroTime`` (Lease renewTime)."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    """An unexpected answer from the API server."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:300]}")
        self.status = status


@dataclass
class AgentOptions:
    """Everything ``manage.py nodeagent`` configures."""

    server: str
    token: str
    names: list[str]
    ca_file: str | None = None
    insecure: bool = False
    capacity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    renew_interval: float = 10.0
    lease_duration: int = 40
    status_check_interval: float = 60.0
    status_report_interval: float = 300.0
    concurrency: int = 64
    node_labels: dict[str, str] = field(default_factory=dict)
    # Seconds between metric samples (clusterapi.nodeagent.metrics); 0 turns them off.
    metrics_interval: float = field(default_factory=node_metrics.default_interval)


@dataclass
class PodWorker:
    """One pod this agent runs."""

    pod: Obj
    task: asyncio.Task[None] | None = None
    pod_ip: str = ""
    start_time: str = ""
    reported: Obj | None = None
    stopping: bool = False


@dataclass
class NodeState:
    """One node this agent serves."""

    name: str
    index: int
    token: str
    host_ip: str
    lease: Obj | None = None
    last_report: float = 0.0
    lease_failures: int = 0
    next_ip: int = 1
    pods: dict[str, PodWorker] = field(default_factory=dict)

    def pod_ip(self) -> str:
        """A fresh pod IP from the node's /24 (10.<244+i/256>.<i%256>.0/24)."""
        ip = f"10.{244 + self.index // 256}.{self.index % 256}.{self.next_ip}"
        self.next_ip = self.next_ip % 254 + 1
        return ip


class NodeAgent:
    """Serves ``options.names`` through ``runtime`` until ``stop()``."""

    def __init__(self, options: AgentOptions, runtime: Runtime) -> None:
        self.options = options
        self.runtime = runtime
        self.nodes: dict[str, NodeState] = {}
        self._stop = asyncio.Event()
        self._limit = asyncio.Semaphore(options.concurrency)
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.boot_id = str(uuid.uuid4())
        self.stats = {"lease_renewals": 0, "lease_errors": 0, "status_patches": 0}

    # --- HTTP ----------------------------------------------------------------------------

    def _verify(self) -> ssl.SSLContext | bool:
        if self.options.insecure:
            return False
        if self.options.ca_file:
            return ssl.create_default_context(cafile=self.options.ca_file)
        return True

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self.options.concurrency,
                max_keepalive_connections=self.options.concurrency,
            )
            self._client = httpx.AsyncClient(
                base_url=self.options.server.rstrip("/"),
                verify=self._verify(),
                timeout=httpx.Timeout(60.0),
                limits=limits,
            )
        return self._client

    async def request(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (200, 201),
    ) -> Obj:
        """One API call; raises ``ApiError`` on any status outside ``ok``."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = orjson.dumps(body)
        async with self._limit:
            for attempt in range(3):
                try:
                    response = await self.client.request(
                        method, path, headers=headers, content=content, params=params
                    )
                    break
                except httpx.RemoteProtocolError:
                    # A pooled connection the server closed as we reused it: the request
                    # never reached the server, so sending it again is safe.
                    if attempt == 2:
                        raise
        if response.status_code not in ok:
            raise ApiError(response.status_code, response.text)
        return orjson.loads(response.content) if response.content else {}

    # --- joining -------------------------------------------------------------------------

    async def obtain_credentials(self) -> dict[str, str]:
        """Node name → token (exchanging a bootstrap token, in batches of 1,000)."""
        token = self.options.token
        names = self.options.names
        if not BOOTSTRAP_TOKEN_RE.match(token):
            return dict.fromkeys(names, token)
        out: dict[str, str] = {}
        for start in range(0, len(names), 1000):
            batch = names[start : start + 1000]
            answer = await self.request(
                "POST",
                CREDENTIALS_PATH,
                token,
                {
                    "apiVersion": "node.berth.dev/v1",
                    "kind": "NodeCredentialRequest",
                    "spec": {"nodeNames": batch},
                },
            )
            for credential in answer["status"]["credentials"]:
                out[credential["nodeName"]] = credential["token"]
        return out

    def node_object(self, node: NodeState) -> Obj:
        """The Node as registered (status included)."""
        labels = {
            "kubernetes.io/hostname": node.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": f"berth-{self.runtime.name}",
            **self.options.node_labels,
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node.name,
                "labels": labels,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {},
            "status": self.node_status(node),
        }

    def node_status(self, node: NodeState, previous: Obj | None = None) -> Obj:
        """Capacity, addresses, nodeInfo and healthy conditions with a fresh heartbeat."""
        now = pod_status.stamp()
        old = {
            c.get("type"): c
            for c in ((previous or {}).get("conditions") or ())
            if isinstance(c, dict)
        }
        conditions = []
        for type_, status, reason, message in NODE_CONDITIONS:
            before = old.get(type_)
            same = before is not None and before.get("status") == status
            conditions.append(
                {
                    "type": type_,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": (before or {}).get("lastTransitionTime", now)
                    if same
                    else now,
                }
            )
        capacity = dict(self.options.capacity)
        return {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": node.host_ip},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": int(getattr(self.runtime, "port", 0))}},
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, node.name).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, node.name)),
                "bootID": self.boot_id,
                "kernelVersion": "simulated"
                if self.runtime.name == "simulated"
                else platform.release(),
                "osImage": f"Berth {self.runtime.name} node",
                "containerRuntimeVersion": self.runtime.version,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    async def register(self, node: NodeState, attempts: int = 10) -> None:
        """Create the Node, or patch the status of one that exists already; a busy server
        (timeouts, 5xx, 429) is retried with backoff, as the kubelet retries registration."""
        for attempt in range(attempts):
            try:
                await self.request("POST", "/api/v1/nodes", node.token, self.node_object(node))
            except ApiError as exc:
                if exc.status == 409:
                    await self.report_node_status(node)
                elif (exc.status < 500 and exc.status != 429) or attempt == attempts - 1:
                    raise
                else:
                    await asyncio.sleep(min(2**attempt, 30) * random.uniform(0.5, 1.0))  # noqa: S311
                    continue
            except httpx.TransportError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(min(2**attempt, 30) * random.uniform(0.5, 1.0))  # noqa: S311
                continue
            node.last_report = asyncio.get_running_loop().time()
            return

    async def report_node_status(self, node: NodeState, previous: Obj | None = None) -> None:
        """Patch the Node's status with fresh, healthy conditions."""
        await self.request(
            "PATCH",
            f"/api/v1/nodes/{node.name}/status",
            node.token,
            {"status": self.node_status(node, previous)},
            content_type=MERGE_PATCH,
        )
        node.last_report = asyncio.get_running_loop().time()
        self.stats["status_patches"] += 1

    # --- heartbeats ----------------------------------------------------------------------

    def _lease_body(self, node: NodeState) -> Obj:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": node.name, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": node.name,
                "leaseDurationSeconds": self.options.lease_duration,
                "renewTime": micro_time(),
            },
        }

    async def renew_lease(self, node: NodeState) -> None:
        """Renew (or create) the node's Lease: one PUT in the common case."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{node.name}"
        for _attempt in range(3):
            if node.lease is None:
                try:
                    node.lease = await self.request("GET", path, node.token)
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                    node.lease = await self.request(
                        "POST",
                        f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                        node.token,
                        self._lease_body(node),
                    )
                    return
            lease = node.lease
            spec = lease.setdefault("spec", {})
            spec["holderIdentity"] = node.name
            spec["leaseDurationSeconds"] = self.options.lease_duration
            spec["renewTime"] = micro_time()
            try:
                node.lease = await self.request("PUT", path, node.token, lease)
                return
            except ApiError as exc:
                node.lease = None
                if exc.status not in (404, 409):
                    raise
        raise ApiError(409, "lease renewal kept conflicting")

    async def _heartbeat(self, node: NodeState) -> None:
        interval = self.options.renew_interval
        # Spread the nodes' renewals over the interval instead of renewing all at once.
        await asyncio.sleep(random.uniform(0, interval))  # noqa: S311
        loop = asyncio.get_running_loop()
        next_check = loop.time() + random.uniform(0, self.options.status_check_interval)  # noqa: S311
        while not self._stop.is_set():
            started = loop.time()
            try:
                await self.renew_lease(node)
                self.stats["lease_renewals"] += 1
                if node.lease_failures:
                    # Back after an outage: the lifecycle controller may have marked us Unknown.
                    node.lease_failures = 0
                    next_check = 0.0
                if started >= next_check:
                    next_check = started + self.options.status_check_interval
                    await self._check_node_status(node)
            except (ApiError, httpx.HTTPError) as exc:
                node.lease_failures += 1
                self.stats["lease_errors"] += 1
                logger.warning("node %s: heartbeat failed: %s", node.name, exc)
            # Upstream renews every interval with a small jitter (0.04).
            delay = interval * (1 + random.uniform(-0.04, 0.04)) - (loop.time() - started)  # noqa: S311
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(delay, 0.05))

    async def _check_node_status(self, node: NodeState) -> None:
        """Report status when it changed (e.g. marked Unknown) or every report interval."""
        current = await self.request("GET", f"/api/v1/nodes/{node.name}", node.token)
        status = current.get("status") or {}
        healthy = {
            c.get("type"): c.get("status")
            for c in status.get("conditions") or ()
            if isinstance(c, dict)
        } == {type_: value for type_, value, _r, _m in NODE_CONDITIONS}
        elapsed = asyncio.get_running_loop().time() - node.last_report
        if not healthy or elapsed >= self.options.status_report_interval:
            await self.report_node_status(node, status)

    # --- pods ----------------------------------------------------------------------------

    def _field_selector(self) -> str:
        if len(self.nodes) == 1:
            return f"spec.nodeName={next(iter(self.nodes))}"
        return "spec.nodeName!="

    async def _watch_pods(self) -> None:
        token = next(iter(self.nodes.values())).token
        selector = self._field_selector()
        while not self._stop.is_set():
            try:
                listed = await self.request(
                    "GET", "/api/v1/pods", token, params={"fieldSelector": selector}
                )
                seen: set[str] = set()
                for pod in listed.get("items") or ():
                    pod.setdefault("kind", "Pod")
                    seen.add(str(pod["metadata"]["uid"]))
                    self._on_pod("ADDED", pod)
                for node in self.nodes.values():
                    for uid in [u for u in node.pods if u not in seen]:
                        self._forget(node, uid)
                version = str((listed.get("metadata") or {}).get("resourceVersion", ""))
                await self._stream(token, selector, version)
            except (ApiError, httpx.HTTPError, orjson.JSONDecodeError) as exc:
                if self._stop.is_set():
                    return
                logger.warning("pod watch interrupted: %s; relisting", exc)
                await asyncio.sleep(1.0)

    async def _stream(self, token: str, selector: str, version: str) -> None:
        params = {
            "fieldSelector": selector,
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
        }
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        timeout = httpx.Timeout(30.0, read=None)
        async with self.client.stream(
            "GET", "/api/v1/pods", params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                raise ApiError(response.status_code, (await response.aread()).decode())
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = orjson.loads(line)
                kind = event.get("type")
                if kind == "ERROR":
                    raise ApiError(int((event.get("object") or {}).get("code") or 500), line)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._on_pod(kind, event["object"])

    def _on_pod(self, event: str, pod: Obj) -> None:
        node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""))
        if node is None:
            return
        uid = str(pod["metadata"]["uid"])
        worker = node.pods.get(uid)
        if event == "DELETED":
            if worker is not None:
                self._forget(node, uid)
            return
        if worker is None:
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
                return  # finished before we (re)started: nothing to run
            worker = node.pods[uid] = PodWorker(pod=pod)
            if not pod["metadata"].get("deletionTimestamp"):
                worker.start_time = (pod.get("status") or {}).get("startTime") or pod_status.stamp()
                worker.pod_ip = (
                    (pod.get("status") or {}).get("podIP")
                    or getattr(self.runtime, "pod_ip", "")
                    or node.pod_ip()
                )
                worker.task = asyncio.create_task(self._run(node, worker))
        else:
            worker.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not worker.stopping:
            worker.stopping = True
            task = asyncio.create_task(self._terminate(node, uid, worker))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _forget(self, node: NodeState, uid: str) -> None:
        worker = node.pods.pop(uid, None)
        if worker is not None and worker.task is not None:
            worker.task.cancel()

    async def _run(self, node: NodeState, worker: PodWorker) -> None:
        async def report(init: list[Obj], containers: list[Obj]) -> None:
            await self._report_pod(node, worker, init, containers)

        try:
            await self.runtime.run_pod(worker.pod, report)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("pod %s failed in the runtime", worker.pod["metadata"].get("name"))

    async def _report_pod(
        self, node: NodeState, worker: PodWorker, init: list[Obj], containers: list[Obj]
    ) -> None:
        status = pod_status.pod_status(
            worker.pod,
            init,
            containers,
            host_ip=node.host_ip,
            pod_ip=worker.pod_ip,
            start_time=worker.start_time,
        )
        # A runtime may add conditions of its own (the process runtime's host ports).
        extra = getattr(self.runtime, "extra_conditions", None)
        if extra is not None:
            status["conditions"].extend(extra(worker.pod))
        if status == worker.reported or worker.stopping:
            return
        meta = worker.pod["metadata"]
        try:
            updated = await self.request(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                node.token,
                {"metadata": {"uid": meta["uid"]}, "status": status},
                content_type=MERGE_PATCH,
            )
        except ApiError as exc:
            if exc.status == 404:
                return
            logger.warning(
                "pod %s/%s: status update failed: %s", meta["namespace"], meta["name"], exc
            )
            return
        worker.reported = status
        worker.pod = updated or worker.pod

    async def _terminate(self, node: NodeState, uid: str, worker: PodWorker) -> None:
        meta = worker.pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        try:
            # Stopped before its task is cancelled: the runtime then stops restarting it and
            # gives it its grace period (a cancelled pod is stopped at once).
            await self.runtime.stop_pod(worker.pod, grace)
            if worker.task is not None:
                worker.task.cancel()
            await self.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                node.token,
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid},
                },
                ok=(200, 202, 404, 409),
            )
        except (ApiError, httpx.HTTPError) as exc:
            logger.warning("pod %s/%s: delete failed: %s", meta["namespace"], meta["name"], exc)
            worker.stopping = False
            return
        node.pods.pop(uid, None)

    # --- running -------------------------------------------------------------------------

    async def start(self) -> None:
        """Join, register every node, and start heartbeats and the pod watch."""
        credentials = await self.obtain_credentials()
        for index, name in enumerate(self.options.names):
            host_ip = getattr(self.runtime, "host_ip", "") or (
                f"172.{16 + index // 65536}.{index // 256 % 256}.{index % 256}"
            )
            self.nodes[name] = NodeState(name, index, credentials[name], host_ip)
        attach = getattr(self.runtime, "attach", None)
        if attach is not None:
            await attach(self)  # API access and the log endpoint of a real runtime
        await asyncio.gather(*(self.register(node) for node in self.nodes.values()))
        for node in self.nodes.values():
            self._tasks.append(asyncio.create_task(self._heartbeat(node)))
        self._tasks.append(asyncio.create_task(self._watch_pods()))
        self._tasks.append(asyncio.create_task(node_metrics.run(self)))
        logger.info("node agent serving %d node(s)", len(self.nodes))

    async def run(self) -> None:
        """Serve until ``stop()``."""
        await self.start()
        await self._stop.wait()
        await self.close()

    async def wait_stopped(self) -> None:
        """Return once ``stop()`` was called."""
        await self._stop.wait()

    def stop(self) -> None:
        """Ask ``run`` to finish."""
        self._stop.set()

    async def close(self) -> None:
        """Cancel every task and close the HTTP client."""
        self._stop.set()
        tasks = list(self._tasks)
        for node in self.nodes.values():
            tasks.extend(w.task for w in node.pods.values() if w.task is not None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        runtime_close = getattr(self.runtime, "close", None)
        if runtime_close is not None:
            await runtime_close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
