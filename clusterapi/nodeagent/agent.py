"""The node agent: K nodes (one for a real machine) served from one asyncio loop over HTTP.

Flow
----
1. **Join**: a bootstrap token (``<id>.<secret>``) is exchanged for one node token per node
   (``POST /apis/node.berth.dev/v1/nodecredentials``, see ``credentials``); any other token
   is used as is for every node (an operator's own credential).
2. **Register** each Node (capacity, allocatable, addresses, nodeInfo, conditions Ready,
   MemoryPressure, DiskPressure, PIDPressure); an existing Node gets its status patched.
3. **Heartbeat** as upstream: the Lease ``kube-node-lease/<node>`` is renewed every
   ``renew_interval`` (10 s; PUT of the cached Lease, re-read on conflict), from just after
   the node's registration; the Node status is checked every ``status_check_interval`` and
   patched when its conditions differ from what the agent reports, or every
   ``status_report_interval`` (5 min) anyway.
4. **Pods**: one list+watch of the pods bound to its nodes (``fieldSelector=spec.nodeName=
   <node>``; with several nodes ``spec.nodeName!=`` filtered to its own names, so 1,000
   simulated nodes need one watch, not 1,000). Each new pod runs through the runtime; every
   change of its containers is reported through ``pods/<name>/status`` (merge patch, with
   the node's own token, as the Node authorizer requires). A pod marked for deletion is
   stopped and then deleted with ``gracePeriodSeconds=0`` (uid precondition). After each
   list the runtime learns which pods the agent runs (``sync_pods``, where it has one): the
   process runtime then stops what an earlier agent on its data dir left of any other pod,
   and resumes the rest as they come (adopting their processes, see
   ``runtimes.process``).

All nodes share one event loop and one pool of keep-alive HTTP/1.1 connections
(``ConnectionPool``, at most ``concurrency`` requests at a time; the pod watch streams through
an ``httpx.AsyncClient``): a heartbeat is a coroutine sleeping between renewals, so 1,000 nodes
cost 1,000 small tasks and about 100 requests a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import random
import re
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

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


class _Stale(Exception):
    """A kept-alive connection the server had closed before it answered."""


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to the API server, for the agent's ordinary requests.

    httpx's pool walks all its connections (with a socket poll for each, and a failed import
    of the absent ``sniffio``) whenever a request starts or ends; at 100 lease renewals a
    second over 64 connections that cost 8-10 ms of CPU per request. Here a request takes an
    idle connection (or opens one), writes, reads one response (``Content-Length``, chunked,
    or up to the close), and puts the connection back: about 0.3 ms. A connection idle longer
    than ``IDLE_SECONDS`` is closed rather than reused (the server keeps them for 75 s), and a
    reused one found closed by the server before any answer is replaced and the request sent
    again (it never reached the server). Failures raise ``httpx`` transport errors, as
    before.
    """

    IDLE_SECONDS = 30.0

    def __init__(self, base_url: str, verify: ssl.SSLContext | bool, timeout: float) -> None:
        parts = urlsplit(base_url)
        secure = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if secure else 80)
        self.prefix = parts.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if parts.port is None else f"{host}:{self.port}"
        self.ssl: ssl.SSLContext | None = None
        if secure:
            if isinstance(verify, ssl.SSLContext):
                self.ssl = verify
            else:
                self.ssl = ssl.create_default_context()
                if not verify:
                    self.ssl.check_hostname = False
                    self.ssl.verify_mode = ssl.CERT_NONE
        self.timeout = timeout
        self._idle: list[tuple[Connection, float]] = []

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; returns (status, body)."""
        target = self.prefix + path + ("?" + urlencode(params) if params else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        now = time.monotonic()
        while self._idle:
            connection, since = self._idle.pop()
            if now - since > self.IDLE_SECONDS:
                connection[1].close()
                continue
            with contextlib.suppress(_Stale):
                return await self._exchange(connection, method, message, reused=True)
        connection = await self._connect()
        return await self._exchange(connection, method, message, reused=False)

    async def _connect(self) -> Connection:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {self.authority}: timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connecting to {self.authority}: {exc}") from exc

    async def _exchange(
        self, connection: Connection, method: str, message: bytes, *, reused: bool
    ) -> tuple[int, bytes]:
        reader, writer = connection
        answered = False
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(message)
                await writer.drain()
                while True:
                    line = await reader.readline()
                    if not line:
                        raise _Stale
                    answered = True
                    version, status_text = line.split(None, 2)[:2]
                    status = int(status_text)
                    headers: dict[bytes, bytes] = {}
                    while True:
                        header = await reader.readline()
                        if header in (b"\r\n", b"\n", b""):
                            break
                        name, _, value = header.partition(b":")
                        headers[name.strip().lower()] = value.strip()
                    if status >= 200 or status == 101:
                        break  # 1xx answers (100 Continue) come before the real one
                close = (
                    headers.get(b"connection", b"").lower() == b"close"
                    or version.upper() == b"HTTP/1.0"
                )
                if method == "HEAD" or status in (204, 304):
                    data = b""
                elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                    data = await self._chunks(reader)
                elif b"content-length" in headers:
                    data = await reader.readexactly(int(headers[b"content-length"]))
                else:
                    data = await reader.read()
                    close = True
        except asyncio.CancelledError:
            writer.close()  # half a conversation: the connection cannot be reused
            raise
        except _Stale:
            writer.close()
            if reused:
                raise
            raise httpx.RemoteProtocolError(
                "the server closed the connection without an answer"
            ) from None
        except TimeoutError as exc:
            writer.close()
            raise httpx.ReadTimeout(f"{method}: no answer within {self.timeout:g} s") from exc
        except (OSError, EOFError, ValueError, IndexError) as exc:
            writer.close()
            if reused and not answered and isinstance(exc, ConnectionError):
                raise _Stale from exc
            raise httpx.RemoteProtocolError(f"{method}: {exc!r}") from exc
        if close:
            writer.close()
        else:
            self._idle.append((connection, time.monotonic()))
        return status, data

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def close(self) -> None:
        """Close the idle connections."""
        for (_reader, writer), _since in self._idle:
            writer.close()
        self._idle.clear()


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
    # The newest status the runtime reported, and the task sending it (``_sync_status``).
    desired: Obj | None = None
    sender: asyncio.Task[None] | None = None


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
        self._pool: ConnectionPool | None = None
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

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(self.options.server, self._verify(), timeout=60.0)
        return self._pool

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
        """One API call; raises ``ApiError`` on any status outside ``ok``. ``body`` may be a
        function returning the body: it is called once a request slot is free, so a Lease's
        renewTime is the moment the renewal is sent, not the moment it joined the queue."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        async with self._limit:
            payload = body() if callable(body) else body
            content = None if payload is None else orjson.dumps(payload)
            status, data = await self.pool.request(method, path, headers, content, params)
        if status not in ok:
            raise ApiError(status, data.decode(errors="replace"))
        return orjson.loads(data) if data else {}

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
                        lambda: self._lease_body(node),
                    )
                    return
            lease = node.lease
            spec = lease.setdefault("spec", {})
            spec["holderIdentity"] = node.name
            spec["leaseDurationSeconds"] = self.options.lease_duration

            def renewed(lease: Obj = lease, spec: Obj = spec) -> Obj:
                spec["renewTime"] = micro_time()
                return lease

            try:
                node.lease = await self.request("PUT", path, node.token, renewed)
                return
            except ApiError as exc:
                node.lease = None
                if exc.status not in (404, 409):
                    raise
        raise ApiError(409, "lease renewal kept conflicting")

    async def _heartbeat(self, node: NodeState) -> None:
        """Renew the node's Lease every interval, from just after its registration: the
        node lifecycle controller counts the 40 s grace period from the Node's creation when
        there is no Lease yet, so the first one must not wait for the other nodes."""
        interval = self.options.renew_interval
        loop = asyncio.get_running_loop()
        next_check = loop.time() + random.uniform(0, self.options.status_check_interval)  # noqa: S311
        first = True
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
            if first:
                # The second renewal comes after a random share of the interval: that spreads
                # the nodes' renewals over it however fast they registered.
                first = False
                delay = random.uniform(0, interval)  # noqa: S311
            else:
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
                sync = getattr(self.runtime, "sync_pods", None)
                if sync is not None:
                    # What an earlier agent left of pods this one does not run is stopped.
                    sync({u for node in self.nodes.values() for u in node.pods}, seen)
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
        if worker is None:
            return
        for task in (worker.task, worker.sender):
            if task is not None:
                task.cancel()

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
        worker.desired = status
        if worker.sender is None or worker.sender.done():
            worker.sender = asyncio.create_task(self._sync_status(node, worker))

    async def _sync_status(self, node: NodeState, worker: PodWorker) -> None:
        """Send the newest status the runtime reported, as the kubelet's status manager does:
        one that a newer report replaced before it was sent is skipped (a pod that starts at
        once goes from nothing to Running in one patch, not two), and reports that arrive
        while a patch is in flight are sent after it, newest only."""
        while True:
            # Let a runtime that reports again without waiting (a container that starts at
            # once) replace this status before it is sent.
            await asyncio.sleep(0)
            status = worker.desired
            if status is None or status == worker.reported or worker.stopping:
                return
            if not await self._patch_status(node, worker, status):
                return

    async def _patch_status(self, node: NodeState, worker: PodWorker, status: Obj) -> bool:
        meta = worker.pod["metadata"]
        try:
            updated = await self.request(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                node.token,
                {"metadata": {"uid": meta["uid"]}, "status": status},
                content_type=MERGE_PATCH,
            )
        except (ApiError, httpx.HTTPError) as exc:
            if not (isinstance(exc, ApiError) and exc.status == 404):
                logger.warning(
                    "pod %s/%s: status update failed: %s", meta["namespace"], meta["name"], exc
                )
            # Not marked reported: the runtime's next report sends it again.
            return False
        worker.reported = status
        worker.pod = updated or worker.pod
        return True

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
        # Each node's heartbeat starts as soon as it is registered. Registrations use at most
        # half the request slots, so the first Leases are not queued behind all of them.
        pending = iter(list(self.nodes.values()))

        async def registrar() -> None:
            for node in pending:
                await self.register(node)
                self._tasks.append(asyncio.create_task(self._heartbeat(node)))

        await asyncio.gather(*(registrar() for _ in range(max(1, self.options.concurrency // 2))))
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
        if self._pool is not None:
            self._pool.close()
            self._pool = None
