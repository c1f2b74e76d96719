"""The cluster as the scheduler sees it: pods, nodes and the snapshot of them.

* ``PodInfo``: a pod parsed once into what plugins read: requests in integer units
  (``pod_requests``: upstream's rule for init containers, sidecars and overhead),
  tolerations, ``nodeSelector`` and node affinity, pod (anti-)affinity terms, host ports,
  spread constraints, priority, and a ``signature`` that equal-shaped pods share.
* ``NodeInfo``: one node and the pods bound to it, with their summed requests, the host
  ports they use and those of them carrying affinity terms (upstream's ``NodeInfo``).
* ``Snapshot``: every ``NodeInfo``, namespace labels, nominated pods. It is the scheduler
  cache's live state, changed only between cycles. Each change to a node bumps ``version``
  and logs the node (``changed_since``); structural changes (nodes added or removed, labels
  changed) bump ``epoch``. ``NodeAggregate`` keeps sums over nodes (pods per topology
  domain, say) current from that log, so plugins never recount the whole cluster per pod.
"""

from __future__ import annotations

import contextlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from clusterapi.core.selectors import (
    DOES_NOT_EXIST,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_IN,
    LabelSelector,
    Requirement,
    SelectorError,
    from_label_selector,
)
from clusterapi.scheduler import quantity

Obj = dict[str, Any]

# What scoring assumes for a container that requests no cpu or memory (upstream's
# non-zero defaults), so that request-less pods do not all pile onto one node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_ZONE = "topology.kubernetes.io/zone"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
DEFAULT_SCHEDULER_NAME = "default-scheduler"


# --- taints and tolerations -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str
    operator: str
    value: str
    effect: str

    def tolerates(self, taint: Taint) -> bool:
        """``Toleration.ToleratesTaint``: an empty effect or key matches any."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        if self.operator in ("", "Equal"):
            return self.value == taint.value
        return False


def tolerated(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    return any(t.tolerates(taint) for t in tolerations)


def first_untolerated(
    taints: Iterable[Taint], tolerations: Sequence[Toleration], effects: Collection[str]
) -> Taint | None:
    """The first taint with one of ``effects`` that no toleration tolerates."""
    for taint in taints:
        if taint.effect in effects and not tolerated(tolerations, taint):
            return taint
    return None


DO_NOT_SCHEDULE = frozenset({"NoSchedule", "NoExecute"})


# --- node selection terms -------------------------------------------------------------------

_NODE_OPERATORS = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
    "Gt": GREATER_THAN,
    "Lt": LESS_THAN,
}


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One ``NodeSelectorTerm``: label requirements and ``metadata.name`` field requirements,
    all of which must hold. A term that cannot be parsed matches nothing, as upstream."""

    labels: tuple[Requirement, ...]
    names: tuple[Requirement, ...]
    valid: bool = True

    @classmethod
    def parse(cls, term: Obj) -> NodeSelectorTerm | None:
        """None for an empty term (which selects nothing)."""
        expressions = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not expressions and not fields:
            return None
        labels: list[Requirement] = []
        names: list[Requirement] = []
        valid = True
        for expr in expressions:
            op = _NODE_OPERATORS.get(str(expr.get("operator", "")))
            if op is None:
                valid = False
                continue
            labels.append(
                Requirement(str(expr.get("key", "")), op, tuple(expr.get("values") or ()))
            )
        for expr in fields:
            op = _NODE_OPERATORS.get(str(expr.get("operator", "")))
            # Only metadata.name with In/NotIn is a valid field requirement.
            if expr.get("key") != "metadata.name" or op not in (IN, NOT_IN):
                valid = False
                continue
            names.append(Requirement("metadata.name", op, tuple(expr.get("values") or ())))
        return cls(tuple(labels), tuple(names), valid)

    def matches(self, node: NodeInfo) -> bool:
        if not self.valid:
            return False
        labels = node.labels
        for req in self.labels:
            if not req.matches(labels):
                return False
        if self.names:
            name = {"metadata.name": node.name}
            for req in self.names:
                if not req.matches(name):
                    return False
        return True


@dataclass(frozen=True, slots=True)
class RequiredNodeAffinity:
    """``nodeSelector`` AND (any of the required node affinity terms)."""

    selector: tuple[tuple[str, str], ...]
    terms: tuple[NodeSelectorTerm, ...] | None  # None: no required node affinity

    def matches(self, node: NodeInfo) -> bool:
        labels = node.labels
        for key, value in self.selector:
            if labels.get(key) != value:
                return False
        if self.terms is None:
            return True
        return any(term.matches(node) for term in self.terms)


@dataclass(frozen=True, slots=True)
class PreferredTerm:
    weight: int
    term: NodeSelectorTerm


# --- pod affinity terms ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A parsed ``PodAffinityTerm`` (upstream ``framework.AffinityTerm``).

    ``namespaces`` defaults to the owning pod's namespace when neither namespaces nor a
    namespace selector is given; a null namespace selector selects no namespace, ``{}``
    every namespace.
    """

    namespaces: frozenset[str]
    namespace_selector: LabelSelector
    selector: LabelSelector
    topology_key: str
    weight: int = 0

    def matches(self, pod: PodInfo, namespace_labels: Mapping[str, str] | None) -> bool:
        if pod.namespace in self.namespaces or (
            not self.namespace_selector.matches_nothing
            and namespace_labels is not None
            and self.namespace_selector.matches(namespace_labels)
        ):
            return self.selector.matches(pod.labels)
        return False


def _affinity_term(
    owner_ns: str, owner_labels: Mapping[str, str], term: Obj, weight: int = 0
) -> AffinityTerm | None:
    try:
        selector = from_label_selector(term.get("labelSelector"))
        namespace_selector = from_label_selector(term.get("namespaceSelector"))
    except SelectorError:
        return None
    # matchLabelKeys / mismatchLabelKeys fold the owner's own label values into the selector.
    extra: list[Requirement] = []
    for key in term.get("matchLabelKeys") or ():
        if key in owner_labels:
            extra.append(Requirement(key, IN, (owner_labels[key],)))
    for key in term.get("mismatchLabelKeys") or ():
        if key in owner_labels:
            extra.append(Requirement(key, NOT_IN, (owner_labels[key],)))
    if extra:
        selector = selector.add(*extra)
    namespaces = term.get("namespaces") or []
    if not namespaces and term.get("namespaceSelector") is None:
        names = frozenset({owner_ns})
    else:
        names = frozenset(str(n) for n in namespaces)
    return AffinityTerm(
        names, namespace_selector, selector, str(term.get("topologyKey", "")), weight
    )


# --- pods -----------------------------------------------------------------------------------


def _requests_of(container: Obj) -> Obj:
    resources = container.get("resources") or {}
    requests = dict(resources.get("requests") or {})
    # The API server defaults a request to its limit; honour that for objects stored before.
    for name, value in (resources.get("limits") or {}).items():
        requests.setdefault(name, value)
    return requests


def _add(into: dict[str, int], requests: Mapping[str, int]) -> None:
    for name, value in requests.items():
        into[name] = into.get(name, 0) + value


def _max_into(into: dict[str, int], requests: Mapping[str, int]) -> None:
    for name, value in requests.items():
        if value > into.get(name, 0):
            into[name] = value


def _amounts(requests: Mapping[str, Any], defaults: Mapping[str, int] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in requests.items():
        try:
            out[name] = quantity.amount(name, value)
        except quantity.QuantityError:
            continue
    if defaults:
        for name, value in defaults.items():
            out.setdefault(name, value)
    return out


def pod_requests(spec: Obj, defaults: Mapping[str, int] | None = None) -> dict[str, int]:
    """What a pod asks of a node: upstream's ``PodRequests``.

    max(sum of the app containers (plus restartable init containers, which keep running),
    the largest init container (with the sidecars started before it)) + overhead. Pod-level
    ``spec.resources.requests`` replace the container sum for the resources they name.
    ``defaults`` fill in a missing cpu/memory request per container (for scoring).
    """
    total: dict[str, int] = {}
    for container in spec.get("containers") or ():
        if isinstance(container, dict):
            _add(total, _amounts(_requests_of(container), defaults))
    sidecars: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for container in spec.get("initContainers") or ():
        if not isinstance(container, dict):
            continue
        requests = _amounts(_requests_of(container), defaults)
        if container.get("restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            during = dict(sidecars)
        else:
            during = dict(requests)
            _add(during, sidecars)
        _max_into(init_max, during)
    _max_into(total, init_max)
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    for name in ("cpu", "memory"):
        if name in pod_level:
            with contextlib.suppress(quantity.QuantityError):
                total[name] = quantity.amount(name, pod_level[name])
    overhead = spec.get("overhead") or {}
    if overhead:
        _add(total, _amounts(overhead, None))
    return total


_NON_ZERO = {"cpu": DEFAULT_MILLI_CPU_REQUEST, "memory": DEFAULT_MEMORY_REQUEST}
_BASIC = frozenset({"cpu", "memory", "ephemeral-storage", "pods"})


def _host_ports(spec: Obj) -> tuple[tuple[str, str, int], ...]:
    ports: list[tuple[str, str, int]] = []
    containers = list(spec.get("containers") or ())
    # Restartable init containers keep their ports for the pod's life.
    containers += [
        c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"
    ]
    for container in containers:
        for port in (container or {}).get("ports") or ():
            host_port = int(port.get("hostPort") or 0)
            if host_port <= 0:
                continue
            ip = str(port.get("hostIP") or "0.0.0.0")  # noqa: S104 - a port spec, not a bind
            ports.append((ip, str(port.get("protocol") or "TCP"), host_port))
    return tuple(ports)


class PodInfo:
    """A pod as the scheduler reads it (see the module docstring)."""

    __slots__ = (
        "affinity_signature",
        "cpu",
        "creation",
        "ephemeral",
        "gated",
        "host_ports",
        "key",
        "labels",
        "memory",
        "name",
        "namespace",
        "node_name",
        "nominated_node_name",
        "non_zero_cpu",
        "non_zero_memory",
        "obj",
        "phase",
        "preemption_policy",
        "preferred_affinity",
        "preferred_anti_affinity",
        "preferred_node_affinity",
        "priority",
        "required_affinity",
        "required_anti_affinity",
        "required_node_affinity",
        "resource_version",
        "scalar",
        "scheduler_name",
        "signature",
        "spread_constraints",
        "start_time",
        "terminating",
        "tolerations",
        "uid",
    )

    def __init__(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        self.obj = obj
        self.namespace = str(meta.get("namespace") or "")
        self.name = str(meta.get("name") or "")
        self.key = (self.namespace, self.name)
        self.uid = str(meta.get("uid") or self.namespace + "/" + self.name)
        self.resource_version = str(meta.get("resourceVersion") or "")
        self.labels: dict[str, str] = dict(meta.get("labels") or {})
        self.creation = str(meta.get("creationTimestamp") or "")
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.priority = int(spec.get("priority") or 0)
        self.preemption_policy = str(spec.get("preemptionPolicy") or "PreemptLowerPriority")
        self.node_name = str(spec.get("nodeName") or "")
        self.scheduler_name = str(spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME)
        self.gated = bool(spec.get("schedulingGates"))
        self.phase = str(status.get("phase") or "")
        self.start_time = str(status.get("startTime") or "")
        self.nominated_node_name = str(status.get("nominatedNodeName") or "")

        requests = pod_requests(spec)
        self.cpu = requests.pop("cpu", 0)
        self.memory = requests.pop("memory", 0)
        self.ephemeral = requests.pop("ephemeral-storage", 0)
        requests.pop("pods", None)
        self.scalar = {k: v for k, v in requests.items() if v}
        non_zero = pod_requests(spec, _NON_ZERO)
        self.non_zero_cpu = non_zero.get("cpu", 0)
        self.non_zero_memory = non_zero.get("memory", 0)

        self.tolerations = tuple(
            Toleration(
                str(t.get("key") or ""),
                str(t.get("operator") or "Equal"),
                str(t.get("value") or ""),
                str(t.get("effect") or ""),
            )
            for t in spec.get("tolerations") or ()
            if isinstance(t, dict)
        )
        self.host_ports = _host_ports(spec)
        self.spread_constraints: tuple[Obj, ...] = tuple(
            c for c in spec.get("topologySpreadConstraints") or () if isinstance(c, dict)
        )

        affinity = spec.get("affinity") or {}
        node_affinity = affinity.get("nodeAffinity") or {}
        selector = spec.get("nodeSelector") or {}
        required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        terms: tuple[NodeSelectorTerm, ...] | None = None
        if required is not None:
            parsed = (NodeSelectorTerm.parse(t) for t in required.get("nodeSelectorTerms") or ())
            terms = tuple(t for t in parsed if t is not None)
        self.required_node_affinity = (
            RequiredNodeAffinity(tuple(sorted(selector.items())), terms)
            if selector or terms is not None
            else None
        )
        preferred: list[PreferredTerm] = []
        for item in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ():
            weight = int(item.get("weight") or 0)
            term = NodeSelectorTerm.parse(item.get("preference") or {})
            if weight and term is not None:
                preferred.append(PreferredTerm(weight, term))
        self.preferred_node_affinity = tuple(preferred)

        pod_affinity = affinity.get("podAffinity") or {}
        pod_anti = affinity.get("podAntiAffinity") or {}
        self.required_affinity = self._terms(
            pod_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        )
        self.required_anti_affinity = self._terms(
            pod_anti.get("requiredDuringSchedulingIgnoredDuringExecution")
        )
        self.preferred_affinity = self._weighted(
            pod_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
        )
        self.preferred_anti_affinity = self._weighted(
            pod_anti.get("preferredDuringSchedulingIgnoredDuringExecution")
        )
        # Everything that changes what any plugin answers for this pod: pods with equal
        # signatures are interchangeable to the scheduler (the memo relies on it).
        self.affinity_signature = orjson.dumps(
            [affinity, list(self.spread_constraints)], option=orjson.OPT_SORT_KEYS
        )
        self.signature: Hashable = (
            self.scheduler_name,
            self.namespace,
            frozenset(self.labels.items()),
            self.priority,
            self.cpu,
            self.memory,
            self.ephemeral,
            frozenset(self.scalar.items()),
            self.non_zero_cpu,
            self.non_zero_memory,
            self.tolerations,
            self.host_ports,
            tuple(sorted(selector.items())),
            self.affinity_signature,
        )

    def _terms(self, raw: Any) -> tuple[AffinityTerm, ...]:
        out = []
        for term in raw or ():
            parsed = _affinity_term(self.namespace, self.labels, term)
            if parsed is not None:
                out.append(parsed)
        return tuple(out)

    def _weighted(self, raw: Any) -> tuple[AffinityTerm, ...]:
        out = []
        for item in raw or ():
            parsed = _affinity_term(
                self.namespace,
                self.labels,
                item.get("podAffinityTerm") or {},
                int(item.get("weight") or 0),
            )
            if parsed is not None:
                out.append(parsed)
        return tuple(out)

    @property
    def has_affinity_terms(self) -> bool:
        return bool(
            self.required_affinity
            or self.required_anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
        )

    @property
    def best_effort(self) -> bool:
        return not (self.cpu or self.memory or self.ephemeral or self.scalar)

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def __repr__(self) -> str:
        return f"PodInfo({self.namespace}/{self.name})"


def more_important(a: PodInfo, b: PodInfo) -> bool:
    """``MoreImportantPod``: higher priority, then the one that started earlier."""
    if a.priority != b.priority:
        return a.priority > b.priority
    return (a.start_time or "~") < (b.start_time or "~")


# --- nodes ----------------------------------------------------------------------------------


def _parse_taints(spec: Obj) -> tuple[Taint, ...]:
    return tuple(
        Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        for t in spec.get("taints") or ()
        if isinstance(t, dict)
    )


class NodeInfo:
    """A node and the pods bound to it (see the module docstring)."""

    __slots__ = (
        "alloc_cpu",
        "alloc_ephemeral",
        "alloc_memory",
        "alloc_pods",
        "alloc_scalar",
        "generation",
        "labels",
        "name",
        "node",
        "non_zero_cpu",
        "non_zero_memory",
        "pods",
        "pods_with_affinity",
        "pods_with_required_anti_affinity",
        "req_cpu",
        "req_ephemeral",
        "req_memory",
        "req_scalar",
        "taints",
        "unschedulable",
        "used_ports",
    )

    def __init__(self, node: Obj | None, name: str = "") -> None:
        self.name = name
        self.pods: dict[str, PodInfo] = {}
        self.req_cpu = self.req_memory = self.req_ephemeral = 0
        self.req_scalar: dict[str, int] = {}
        self.non_zero_cpu = self.non_zero_memory = 0
        self.used_ports: Counter[tuple[str, str, int]] = Counter()
        self.pods_with_affinity: dict[str, PodInfo] = {}
        self.pods_with_required_anti_affinity: dict[str, PodInfo] = {}
        self.generation = 0
        self.set_node(node)

    def set_node(self, node: Obj | None) -> None:
        """(Re)read the node object; None keeps a placeholder for pods of a missing node."""
        self.node = node
        meta = (node or {}).get("metadata") or {}
        spec = (node or {}).get("spec") or {}
        status = (node or {}).get("status") or {}
        self.name = str(meta.get("name") or self.name)
        self.labels: dict[str, str] = dict(meta.get("labels") or {})
        self.taints = _parse_taints(spec)
        self.unschedulable = bool(spec.get("unschedulable"))
        # kubelets report both; a hand-made Node with only capacity is read from that.
        allocatable = status.get("allocatable") or status.get("capacity") or {}
        amounts = _amounts(allocatable, None)
        self.alloc_cpu = amounts.pop("cpu", 0)
        self.alloc_memory = amounts.pop("memory", 0)
        self.alloc_ephemeral = amounts.pop("ephemeral-storage", 0)
        self.alloc_pods = amounts.pop("pods", 0)
        self.alloc_scalar = amounts
        self.generation += 1

    def add_pod(self, pod: PodInfo) -> None:
        self.pods[pod.uid] = pod
        self.req_cpu += pod.cpu
        self.req_memory += pod.memory
        self.req_ephemeral += pod.ephemeral
        for name, value in pod.scalar.items():
            self.req_scalar[name] = self.req_scalar.get(name, 0) + value
        self.non_zero_cpu += pod.non_zero_cpu
        self.non_zero_memory += pod.non_zero_memory
        for port in pod.host_ports:
            self.used_ports[port] += 1
        if pod.has_affinity_terms:
            self.pods_with_affinity[pod.uid] = pod
        if pod.required_anti_affinity:
            self.pods_with_required_anti_affinity[pod.uid] = pod
        self.generation += 1

    def remove_pod(self, pod: PodInfo) -> bool:
        """Remove a pod (by uid); False when it was not on this node."""
        current = self.pods.pop(pod.uid, None)
        if current is None:
            return False
        self.req_cpu -= current.cpu
        self.req_memory -= current.memory
        self.req_ephemeral -= current.ephemeral
        for name, value in current.scalar.items():
            self.req_scalar[name] = self.req_scalar.get(name, 0) - value
        self.non_zero_cpu -= current.non_zero_cpu
        self.non_zero_memory -= current.non_zero_memory
        for port in current.host_ports:
            self.used_ports[port] -= 1
            if self.used_ports[port] <= 0:
                del self.used_ports[port]
        self.pods_with_affinity.pop(current.uid, None)
        self.pods_with_required_anti_affinity.pop(current.uid, None)
        self.generation += 1
        return True

    def clone(self) -> NodeInfo:
        """A copy whose pods can be added and removed (preemption's what-if runs)."""
        copy = NodeInfo.__new__(NodeInfo)
        for slot in NodeInfo.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy.pods = dict(self.pods)
        copy.req_scalar = dict(self.req_scalar)
        copy.used_ports = Counter(self.used_ports)
        copy.pods_with_affinity = dict(self.pods_with_affinity)
        copy.pods_with_required_anti_affinity = dict(self.pods_with_required_anti_affinity)
        return copy

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"


# --- snapshot -------------------------------------------------------------------------------

_LOG_LIMIT = 200_000
_AGGREGATES_LIMIT = 512


class NodeAggregate:
    """A sum over nodes of per-node counts, kept current as nodes change.

    ``compute(node)`` gives a node's contribution (a mapping of keys to counts; an empty
    mapping means the node takes no part). ``totals`` is the sum, and ``members`` how many
    nodes contributed each key, so a key whose count is 0 but which some node carries (a
    topology domain without matching pods) is still present.
    """

    __slots__ = ("compute", "epoch", "members", "per_node", "totals", "version")

    def __init__(self, compute: Callable[[NodeInfo], Mapping[Hashable, int]]) -> None:
        self.compute = compute
        self.epoch = -1
        self.version = -1
        self.per_node: dict[str, Mapping[Hashable, int]] = {}
        self.totals: dict[Hashable, int] = {}
        self.members: dict[Hashable, int] = {}

    def _apply(self, contribution: Mapping[Hashable, int], sign: int) -> None:
        for key, count in contribution.items():
            self.totals[key] = self.totals.get(key, 0) + sign * count
            members = self.members.get(key, 0) + sign
            if members:
                self.members[key] = members
            else:
                del self.members[key]
                del self.totals[key]

    def refresh(self, snapshot: Snapshot) -> dict[Hashable, int]:
        changed = None
        if self.epoch == snapshot.epoch:
            changed = snapshot.changed_since(self.version)
        if changed is None:
            self.per_node, self.totals, self.members = {}, {}, {}
            changed = set(snapshot.nodes)
        for name in changed:
            old = self.per_node.pop(name, None)
            if old:
                self._apply(old, -1)
            node = snapshot.nodes.get(name)
            if node is None or node.node is None:
                continue
            new = self.compute(node)
            if new:
                self.per_node[name] = new
                self._apply(new, 1)
        self.epoch, self.version = snapshot.epoch, snapshot.version
        return self.totals


class Snapshot:
    """The cluster as a scheduling cycle sees it (see the module docstring)."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        # Pods nominated to a node by preemption and not bound yet: node -> uid -> pod.
        self.nominated: dict[str, dict[str, PodInfo]] = {}
        self._nominated_node: dict[str, str] = {}
        self.version = 0
        self.epoch = 0
        self._log: list[str] = []
        self._log_base = 0
        self._domains: dict[str, dict[str, set[str]]] = {}
        self._partitions: dict[tuple[str, ...], dict[tuple[str | None, ...], list[str]]] = {}
        self._aggregates: OrderedDict[Hashable, NodeAggregate] = OrderedDict()
        self.pods_with_affinity = 0
        self.pods_with_required_anti_affinity = 0
        self._num_nodes = 0
        self._counted_epoch = -1

    # -- change tracking --

    def touch(self, name: str) -> None:
        """Record that node ``name`` changed (its pods or its object)."""
        self.version += 1
        self._log.append(name)
        if len(self._log) > _LOG_LIMIT:
            drop = len(self._log) // 2
            del self._log[:drop]
            self._log_base += drop

    def restructure(self) -> None:
        """Record a change that invalidates everything derived (nodes, labels, namespaces)."""
        # (The version is left alone: each version is one entry of the change log.)
        self.epoch += 1
        self._domains.clear()
        self._partitions.clear()

    def changed_since(self, version: int) -> set[str] | None:
        """Names of the nodes touched after ``version``; None if the log no longer says."""
        if version < self._log_base:
            return None
        return set(self._log[version - self._log_base :])

    def domain(self, key: str, value: str) -> set[str]:
        """Names of the nodes whose label ``key`` has ``value``."""
        index = self._domains.get(key)
        if index is None:
            index = {}
            for name, node in self.nodes.items():
                label = node.labels.get(key)
                if label is not None:
                    index.setdefault(label, set()).add(name)
            self._domains[key] = index
        return index.get(value, set())

    def partition(self, keys: tuple[str, ...]) -> dict[tuple[str | None, ...], list[str]]:
        """Node names grouped by their values of the label ``keys`` (None: label missing);
        nodes without a Node object are left out. Cached until the next restructuring."""
        found = self._partitions.get(keys)
        if found is None:
            found = {}
            for name, node in self.nodes.items():
                if node.node is not None:
                    domain = tuple(node.labels.get(k) for k in keys)
                    found.setdefault(domain, []).append(name)
            self._partitions[keys] = found
        return found

    def aggregate(
        self, key: Hashable, compute: Callable[[NodeInfo], Mapping[Hashable, int]]
    ) -> dict[Hashable, int]:
        """The current totals of a ``NodeAggregate`` remembered under ``key``."""
        found = self._aggregates.get(key)
        if found is None:
            found = self._aggregates[key] = NodeAggregate(compute)
            if len(self._aggregates) > _AGGREGATES_LIMIT:
                self._aggregates.popitem(last=False)
        else:
            self._aggregates.move_to_end(key)
        return found.refresh(self)

    # -- mutation (the cache calls these) --

    def set_node(self, node: Obj) -> NodeInfo:
        name = str(node["metadata"]["name"])
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(node)
            self.restructure()
        else:
            old_labels = info.labels
            had_node = info.node is not None
            info.set_node(node)
            if info.labels != old_labels or not had_node:
                self.restructure()
        self.touch(name)
        return info

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        if info.pods:
            # Pods outlive their node in the cache until they are deleted themselves.
            info.set_node(None)
        else:
            del self.nodes[name]
        self.restructure()
        self.touch(name)

    def add_pod(self, pod: PodInfo, node_name: str) -> None:
        info = self.nodes.get(node_name)
        if info is None:
            info = self.nodes[node_name] = NodeInfo(None, node_name)
            self.restructure()
        info.add_pod(pod)
        if pod.has_affinity_terms:
            self.pods_with_affinity += 1
        if pod.required_anti_affinity:
            self.pods_with_required_anti_affinity += 1
        self.touch(node_name)

    def remove_pod(self, pod: PodInfo, node_name: str) -> None:
        info = self.nodes.get(node_name)
        if info is None or not info.remove_pod(pod):
            return
        if pod.has_affinity_terms:
            self.pods_with_affinity -= 1
        if pod.required_anti_affinity:
            self.pods_with_required_anti_affinity -= 1
        if info.node is None and not info.pods:
            del self.nodes[node_name]
            self.restructure()
        self.touch(node_name)

    def set_namespace(self, name: str, labels: Mapping[str, str] | None) -> None:
        current = self.namespaces.get(name)
        if labels is None:
            if current is not None:
                del self.namespaces[name]
                self.restructure()
            return
        if current != labels:
            self.namespaces[name] = dict(labels)
            self.restructure()

    def nominate(self, pod: PodInfo, node_name: str) -> None:
        self.forget_nomination(pod)
        self.nominated.setdefault(node_name, {})[pod.uid] = pod
        self._nominated_node[pod.uid] = node_name
        self.touch(node_name)

    def forget_nomination(self, pod: PodInfo) -> None:
        node_name = self._nominated_node.pop(pod.uid, None)
        if node_name is None:
            return
        pods = self.nominated.get(node_name, {})
        pods.pop(pod.uid, None)
        if not pods:
            self.nominated.pop(node_name, None)
        self.touch(node_name)

    def names(self) -> set[str]:
        return set(self.nodes)

    def num_nodes(self) -> int:
        """Nodes with a Node object (cached per epoch: only restructuring changes it)."""
        if self._counted_epoch != self.epoch:
            self._num_nodes = sum(1 for n in self.nodes.values() if n.node is not None)
            self._counted_epoch = self.epoch
        return self._num_nodes

    def schedulable_nodes(self) -> list[NodeInfo]:
        """Nodes with a Node object (not placeholders for pods of a deleted node)."""
        return [n for n in self.nodes.values() if n.node is not None]
