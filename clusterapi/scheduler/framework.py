"""The scheduling framework: what plugins see, what they implement, and how a cycle runs.

Data
----
* ``PodInfo``: a pod parsed once into what the plugins read (requests in integer units,
  tolerations, node selector and affinity, pod (anti-)affinity terms, host ports, spread
  constraints, priority). Parsing happens when the cache first sees the pod, never per node.
* ``NodeInfo``: one node with the pods bound to it and their summed requests, the host ports
  they use and the pods among them that carry affinity terms (upstream's ``NodeInfo``).
* ``Snapshot``: every ``NodeInfo`` plus namespace labels and nominated pods. It is the live
  state of the scheduler cache (``clusterapi.scheduler.cache``), changed only between
  scheduling cycles, so a cycle reads it without copying. Every change to a node bumps
  ``version`` and logs the node's name; structural changes (nodes added or removed, labels
  changed) bump ``epoch``. ``changed_since`` is what incremental work is built on.
* ``CycleState``: per-pod scratch data that PreFilter/PreScore hand to Filter/Score.

Plugins
-------
Each plugin (one module per plugin in ``clusterapi.scheduler.plugins``) has a ``NAME`` and
implements some of the extension points as methods: ``pre_filter``, ``filter``,
``pre_score``, ``score``, ``normalize`` (the ``Protocol`` classes below), plus
``add_pod``/``remove_pod`` for preemption's what-if runs. A plugin whose per-node answers
depend on more than the node itself (topology spread, inter-pod affinity) declares it with
``memo_key`` (the cluster-wide inputs of its answers) and ``topology_keys`` (nodes sharing a
value of these labels share a domain), so the incremental evaluation below stays exact.

Flow of one cycle (``Framework.evaluate``)
------------------------------------------
1. PreFilter: each filter plugin prepares state, may ``SKIP`` itself or reject the pod.
2. Filter: each remaining plugin answers per node; the first failure is the node's status.
3. PreScore / Score on the feasible nodes; NormalizeScore maps a plugin's scores onto
   0..100; each is multiplied by the plugin's weight and summed.
4. ``select_host`` picks the highest total, breaking ties at random (seeded in tests).

The same pod shape is scheduled over and over (a Deployment's replicas, a batch of jobs).
``Evaluation`` keeps the per-plugin answers of the previous pod with the same signature, and
the next one re-asks only for nodes that changed since (usually the one node the previous pod
went to) or, for cluster-scoped plugins, for nodes in the domains that changed. That is what
makes a batch of thousands of pods cost little more than their binds.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import math
import random
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, cast

import orjson

from clusterapi.api.selectors import (
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

MAX_NODE_SCORE = 100
# What scoring assumes for a container that requests no cpu or memory (upstream's
# non-zero defaults), so that request-less pods do not all pile onto one node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_ZONE = "topology.kubernetes.io/zone"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
DEFAULT_SCHEDULER_NAME = "default-scheduler"


# --- status ---------------------------------------------------------------------------------


class Code(enum.IntEnum):
    """Upstream's status codes, in upstream's order."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's answer when it is not plain success (success is ``None``)."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def with_plugin(self, plugin: str) -> Status:
        return self if self.plugin == plugin else Status(self.code, self.reasons, plugin)


SKIP = Status(Code.SKIP)


def unschedulable(*reasons: str, plugin: str = "") -> Status:
    """Rejected here, but preemption might help (resources, ports, anti-affinity)."""
    return Status(Code.UNSCHEDULABLE, reasons, plugin)


def unresolvable(*reasons: str, plugin: str = "") -> Status:
    """Rejected here whatever is preempted (labels, taints, node name)."""
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)


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


# --- cycle state ----------------------------------------------------------------------------


class StateData(Protocol):
    def clone(self) -> StateData: ...


class CycleState:
    """Scratch data of one pod's cycle, keyed by plugin (``"PreFilter" + NAME`` style)."""

    __slots__ = ("_data", "snapshot")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._data: dict[str, Any] = {}

    def read(self, key: str) -> Any:
        return self._data.get(key)

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def clone(self) -> CycleState:
        """A copy for a what-if run: data with a ``clone`` method is copied, the rest shared."""
        copy = CycleState(self.snapshot)
        for key, value in self._data.items():
            cloner = getattr(value, "clone", None)
            copy._data[key] = cloner() if callable(cloner) else value
        return copy


# --- plugin protocols -----------------------------------------------------------------------


class Plugin(Protocol):
    NAME: ClassVar[str]


class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        """Prepare state; ``SKIP`` when the plugin has nothing to check for this pod."""


class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None when the pod may run on ``node``; else why not."""


class PreFilterExtensions(Plugin, Protocol):
    """What-if support for preemption: adjust the PreFilter state for a pod added/removed."""

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None: ...

    def remove_pod(
        self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo
    ) -> None: ...


class PreScorePlugin(Plugin, Protocol):
    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]
    ) -> Status | None:
        """Prepare scoring over the feasible ``nodes``; ``SKIP`` to contribute nothing."""


class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        """The node's raw score for this pod."""


class NormalizeScorePlugin(ScorePlugin, Protocol):
    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        """Map raw scores (node name -> score) onto 0..MAX_NODE_SCORE, in place."""


class ClusterScoped(Plugin, Protocol):
    """A plugin whose per-node answers depend on other nodes (see the module docstring)."""

    def memo_key(self, state: CycleState) -> Hashable:
        """The cluster-wide inputs of the per-node answers: when it changes, all change."""

    def topology_keys(self, state: CycleState) -> Collection[str]:
        """Label keys whose domains share answers: a change to a node affects its domain."""


def _has(plugin: object, method: str) -> bool:
    return callable(getattr(plugin, method, None))


def default_normalize(scores: dict[str, int], *, reverse: bool = False) -> None:
    """``DefaultNormalizeScore``: scale to 0..100 by the maximum (reversed: 100 - that)."""
    if not scores:
        return
    top = max(scores.values())
    if top <= 0:
        if reverse:
            for name in scores:
                scores[name] = MAX_NODE_SCORE
        return
    if reverse:
        for name, value in scores.items():
            scores[name] = MAX_NODE_SCORE - MAX_NODE_SCORE * value // top
    else:
        for name, value in scores.items():
            scores[name] = MAX_NODE_SCORE * value // top


# --- profiles -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """One scheduler profile (``KubeSchedulerConfiguration.profiles[]``)."""

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    filters: tuple[str, ...] = ()
    scores: tuple[tuple[str, int], ...] = ()
    plugin_args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    preemption: bool = True


# The default plugins in upstream's order, with upstream's default score weights.
DEFAULT_FILTERS = (
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "PodTopologySpread",
    "InterPodAffinity",
)
DEFAULT_SCORES = (
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("NodeResourcesBalancedAllocation", 1),
)


def default_profile(scoring_strategy: str = "LeastAllocated", **plugin_args: Any) -> Profile:
    """The default profile; ``scoring_strategy="MostAllocated"`` bin-packs instead."""
    args: dict[str, Mapping[str, Any]] = {
        "NodeResourcesFit": {"scoringStrategy": {"type": scoring_strategy}},
    }
    args.update(plugin_args)
    return Profile(filters=DEFAULT_FILTERS, scores=DEFAULT_SCORES, plugin_args=args)


# --- the failure message --------------------------------------------------------------------


def fit_error_message(
    num_nodes: int,
    statuses: Mapping[str, Status],
    *,
    pre_filter_msg: str = "",
    post_filter_msg: str = "",
) -> str:
    """``FitError.Error()``: ``0/3 nodes are available: 1 node(s) were unschedulable, 2
    Insufficient cpu.`` Each node's reasons are counted; the ``"<count> <reason>"`` strings
    are sorted as strings, as upstream does. A PostFilter (preemption) message follows."""
    if num_nodes == 0 and not statuses:
        return "no nodes available to schedule pods"
    message = f"0/{num_nodes} nodes are available:"
    if pre_filter_msg:
        message += f" {pre_filter_msg}."
    else:
        histogram = Counter(reason for s in statuses.values() for reason in s.reasons)
        parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
        if parts:
            message += " " + ", ".join(parts) + "."
    if post_filter_msg:
        message += " " + post_filter_msg
    return message


# --- evaluation -----------------------------------------------------------------------------


class Leaderboard:
    """Feasible nodes by total score, for picking the best in O(ties) rather than O(nodes).

    Nodes with the same total share a bucket (a list, with each node's index kept so it can
    leave in O(1)); the best bucket is the highest key. A pod moves one or two nodes between
    buckets, so choosing among thousands of equal nodes stays cheap.
    """

    __slots__ = ("buckets", "index", "totals")

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.buckets: dict[int, list[str]] = {}
        self.index: dict[str, int] = {}

    def clear(self) -> None:
        self.totals.clear()
        self.buckets.clear()
        self.index.clear()

    def remove(self, name: str) -> None:
        total = self.totals.pop(name, None)
        if total is None:
            return
        bucket = self.buckets[total]
        i = self.index.pop(name)
        last = bucket.pop()
        if last != name:
            bucket[i] = last
            self.index[last] = i
        if not bucket:
            del self.buckets[total]

    def set(self, name: str, total: int) -> None:
        if self.totals.get(name) == total:
            return
        self.remove(name)
        self.totals[name] = total
        bucket = self.buckets.setdefault(total, [])
        self.index[name] = len(bucket)
        bucket.append(name)

    def best(self, rng: random.Random, exclude: Collection[str] = ()) -> str | None:
        """The highest total, a random one among equals (``selectHost``)."""
        for total in sorted(self.buckets, reverse=True):
            bucket = self.buckets[total]
            if exclude:
                bucket = [n for n in bucket if n not in exclude]
                if not bucket:
                    continue
            return bucket[0] if len(bucket) == 1 else bucket[rng.randrange(len(bucket))]
        return None


class Evaluation:
    """Per-plugin answers for one pod signature, refreshed incrementally (module docstring)."""

    __slots__ = (
        "board",
        "epoch",
        "failures",
        "feasible",
        "filter_keys",
        "filters",
        "norm",
        "raw",
        "score_keys",
        "scores",
        "version",
    )

    def __init__(self) -> None:
        self.epoch = -1
        self.version = -1
        self.filters: tuple[FilterPlugin, ...] = ()
        self.filter_keys: list[Hashable] = []
        # Per active filter: the nodes it rejects, with its status.
        self.failures: list[dict[str, Status]] = []
        self.feasible: dict[str, NodeInfo] = {}
        self.scores: tuple[tuple[ScorePlugin, int], ...] = ()
        self.score_keys: list[Hashable] = []
        self.raw: list[dict[str, int]] = []
        self.norm: list[dict[str, int] | None] = []
        self.board = Leaderboard()


@dataclass
class Result:
    """The outcome of evaluating one pod against the snapshot.

    ``board`` ranks the feasible nodes (it belongs to the memo: read it before the next
    evaluation of the same pod shape); ``blocked`` are feasible nodes whose room is held
    for nominated pods of higher priority.
    """

    board: Leaderboard
    statuses: dict[str, Status]
    num_nodes: int
    pre_filter_status: Status | None = None
    state: CycleState | None = None
    blocked: frozenset[str] = frozenset()

    @property
    def totals(self) -> dict[str, int]:
        """Node name -> weighted score of every node the pod fits."""
        if self.blocked:
            return {n: t for n, t in self.board.totals.items() if n not in self.blocked}
        return self.board.totals

    def fits(self, name: str) -> bool:
        return name in self.board.totals and name not in self.blocked

    def best(self, rng: random.Random) -> str | None:
        return self.board.best(rng, self.blocked)

    def message(self, post_filter_msg: str = "") -> str:
        pre = self.pre_filter_status.message if self.pre_filter_status is not None else ""
        return fit_error_message(
            self.num_nodes, self.statuses, pre_filter_msg=pre, post_filter_msg=post_filter_msg
        )


_NO_KEY: Hashable = ()


class Framework:
    """A profile's plugins, instantiated, and the cycle that runs them (module docstring)."""

    def __init__(
        self, profile: Profile, registry: Mapping[str, Callable[..., Plugin]] | None = None
    ):
        if registry is None:
            from clusterapi.scheduler.plugins import IN_TREE

            registry = IN_TREE
        self.profile = profile
        self.plugins: dict[str, Plugin] = {}
        for name in itertools.chain(profile.filters, (n for n, _ in profile.scores)):
            if name not in self.plugins:
                factory = registry.get(name)
                if factory is None:
                    raise ValueError(f"unknown scheduler plugin {name!r}")
                self.plugins[name] = factory(profile.plugin_args.get(name, {}))
        self.filters: tuple[FilterPlugin, ...] = tuple(
            cast(FilterPlugin, p) for n in profile.filters if _has(p := self.plugins[n], "filter")
        )
        self.scores: tuple[tuple[ScorePlugin, int], ...] = tuple(
            (cast(ScorePlugin, p), w)
            for n, w in profile.scores
            if _has(p := self.plugins[n], "score")
        )
        # Which extension points each plugin implements, looked up once: isinstance() on a
        # runtime-checkable Protocol costs more than a whole Filter call.
        plugins = self.plugins.values()
        self._pre_filters = {p.NAME for p in plugins if _has(p, "pre_filter")}
        self._pre_scores = {p.NAME for p in plugins if _has(p, "pre_score")}
        self._normalizers = {p.NAME for p in plugins if _has(p, "normalize")}
        self._cluster_scoped = {p.NAME for p in plugins if _has(p, "memo_key")}
        self.extensions = {p.NAME for p in plugins if _has(p, "add_pod")}

    # -- single node helpers (preemption) --

    def pre_filter(
        self, state: CycleState, pod: PodInfo
    ) -> tuple[list[FilterPlugin], Status | None]:
        active: list[FilterPlugin] = []
        for plugin in self.filters:
            if plugin.NAME in self._pre_filters:
                status = cast(PreFilterPlugin, plugin).pre_filter(state, pod)
                if status is not None:
                    if status.code == Code.SKIP:
                        continue
                    return active, status.with_plugin(plugin.NAME)
            active.append(plugin)
        return active, None

    @staticmethod
    def run_filters(
        filters: Sequence[FilterPlugin], state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> Status | None:
        for plugin in filters:
            status = plugin.filter(state, pod, node)
            if status is not None:
                return status.with_plugin(plugin.NAME)
        return None

    def filters_with_nominated(
        self, filters: Sequence[FilterPlugin], state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> Status | None:
        """``RunFilterPluginsWithNominatedPods``: with the node's nominated pods of at least
        this pod's priority added (so they keep the room preemption made for them), then
        without them; both must pass."""
        nominated = [
            p
            for p in state.snapshot.nominated.get(node.name, {}).values()
            if p.uid != pod.uid and p.priority >= pod.priority
        ]
        if nominated:
            with_nominated = node.clone()
            added = state.clone()
            for other in nominated:
                with_nominated.add_pod(other)
                for plugin in filters:
                    if plugin.NAME in self.extensions:
                        cast(PreFilterExtensions, plugin).add_pod(added, pod, other, with_nominated)
            status = self.run_filters(filters, added, pod, with_nominated)
            if status is not None:
                return status
        return self.run_filters(filters, state, pod, node)

    # -- the cycle --

    def evaluate(self, pod: PodInfo, snapshot: Snapshot, memo: Evaluation | None = None) -> Result:
        """Filter and score every node for ``pod`` (see the module docstring).

        ``memo`` carries the answers for the previous pod of the same signature; it is
        refreshed in place. Without one, everything is computed afresh.
        """
        state = CycleState(snapshot)
        nodes = snapshot.nodes
        num_nodes = snapshot.num_nodes()
        active, rejected = self.pre_filter(state, pod)
        if rejected is not None:
            everywhere = {n: rejected for n, info in nodes.items() if info.node is not None}
            return Result(Leaderboard(), everywhere, num_nodes, rejected, state)
        ev = memo if memo is not None else Evaluation()
        filters = tuple(active)
        filter_keys = [self._memo_key(p, state) for p in filters]
        changed: set[str] | None = None
        if ev.epoch == snapshot.epoch and ev.filters == filters:
            changed = snapshot.changed_since(ev.version)
        if changed is None:
            ev.filters = filters
            ev.filter_keys = [_NO_KEY for _ in filters]
            ev.failures = [{} for _ in filters]
            ev.feasible = {}
            ev.scores, ev.score_keys, ev.raw, ev.norm = (), [], [], []
            ev.board.clear()
        everything = changed is None
        since: set[str] = changed or set()

        # 1. Filter: re-ask each plugin for the nodes whose answer may have changed.
        touched_all = everything
        touched: set[str] = set()
        for i, fplugin in enumerate(filters):
            refilter: Collection[str]
            if everything or ev.filter_keys[i] != filter_keys[i]:
                refilter = nodes
                touched_all = True
            else:
                refilter = self._expand(since, fplugin, state, snapshot)
                touched |= refilter
            failures = ev.failures[i]
            for name in refilter:
                info = nodes.get(name)
                if info is None or info.node is None:
                    failures.pop(name, None)
                    continue
                status = fplugin.filter(state, pod, info)
                if status is None:
                    failures.pop(name, None)
                else:
                    failures[name] = status
        ev.filter_keys = filter_keys
        if touched_all:
            touched = snapshot.names() | ev.feasible.keys()
        newly_feasible: set[str] = set()
        newly_infeasible: set[str] = set()
        feasible = ev.feasible
        all_failures = ev.failures
        for name in touched:
            info = nodes.get(name)
            if (
                info is not None
                and info.node is not None
                and not any(name in f for f in all_failures)
            ):
                if name not in feasible:
                    newly_feasible.add(name)
                feasible[name] = info
            elif feasible.pop(name, None) is not None:
                newly_infeasible.add(name)
        ev.epoch, ev.version = snapshot.epoch, snapshot.version
        if not feasible:
            # Nothing to score; the next pod of this shape scores afresh.
            ev.scores = ()
            ev.board.clear()
            return Result(ev.board, self.diagnose(ev, snapshot), num_nodes, None, state)

        # 2. PreScore and Score the feasible nodes, again only where answers may change.
        scorers: list[tuple[ScorePlugin, int]] = []
        for splugin, weight in self.scores:
            if splugin.NAME in self._pre_scores:
                status = cast(PreScorePlugin, splugin).pre_score(state, pod, feasible.values())
                if status is not None and status.code == Code.SKIP:
                    continue
            scorers.append((splugin, weight))
        scorer_tuple = tuple(scorers)
        score_keys = [self._memo_key(p, state) for p, _ in scorers]
        all_totals = everything or ev.scores != scorer_tuple
        if all_totals:
            ev.scores = scorer_tuple
            ev.score_keys = [_NO_KEY for _ in scorers]
            ev.raw = [{} for _ in scorers]
            ev.norm = [None for _ in scorers]
        total_dirty: set[str] = newly_feasible | newly_infeasible
        for j, (splugin, _weight) in enumerate(scorers):
            raw = ev.raw[j]
            rescore: Collection[str]
            raw_changed = bool(newly_feasible or newly_infeasible)
            if all_totals or ev.score_keys[j] != score_keys[j]:
                raw.clear()
                rescore = feasible
                all_totals = raw_changed = True
            else:
                for name in newly_infeasible:
                    raw.pop(name, None)
                rescore = self._expand(since, splugin, state, snapshot) | newly_feasible
            for name in rescore:
                info = feasible.get(name)
                if info is None:
                    raw.pop(name, None)
                    continue
                value = splugin.score(state, pod, info)
                if raw.get(name) != value:
                    raw[name] = value
                    raw_changed = True
                    total_dirty.add(name)
            if splugin.NAME in self._normalizers:
                previous = ev.norm[j]
                if previous is not None and not raw_changed:
                    continue  # same raw scores, same state: the same normalized scores
                normalized = dict(raw)
                cast(NormalizeScorePlugin, splugin).normalize(state, pod, normalized)
                if previous is None:
                    all_totals = True
                elif not all_totals and previous != normalized:
                    total_dirty |= {n for n, v in normalized.items() if previous.get(n) != v}
                ev.norm[j] = normalized
        ev.score_keys = score_keys

        # 3. Weighted totals, ranked.
        contributions: list[tuple[dict[str, int], int]] = []
        for j, (_p, weight) in enumerate(scorers):
            norm = ev.norm[j]
            contributions.append((norm if norm is not None else ev.raw[j], weight))
        board = ev.board
        if all_totals:
            board.clear()
            names: Iterable[str] = feasible
        else:
            names = total_dirty
        for name in names:
            if name in feasible:
                board.set(name, sum(c.get(name, 0) * w for c, w in contributions))
            else:
                board.remove(name)

        # 4. Nominated pods keep the room preemption freed for them from lower priorities.
        statuses: dict[str, Status] = {}
        blocked: dict[str, Status] = {}
        for node_name in snapshot.nominated:
            info = feasible.get(node_name)
            if info is not None:
                status = self.filters_with_nominated(filters, state, pod, info)
                if status is not None:
                    blocked[node_name] = status
        if blocked:
            statuses.update(blocked)
            if len(blocked) >= len(feasible):
                statuses.update(self.diagnose(ev, snapshot))
        return Result(board, statuses, num_nodes, None, state, frozenset(blocked))

    def _memo_key(self, plugin: Plugin, state: CycleState) -> Hashable:
        if plugin.NAME not in self._cluster_scoped:
            return _NO_KEY
        return cast(ClusterScoped, plugin).memo_key(state)

    def _expand(
        self, changed: set[str], plugin: Plugin, state: CycleState, snapshot: Snapshot
    ) -> set[str]:
        if not changed or plugin.NAME not in self._cluster_scoped:
            return changed
        keys = cast(ClusterScoped, plugin).topology_keys(state)
        if not keys:
            return changed
        out = set(changed)
        nodes = snapshot.nodes
        for name in changed:
            info = nodes.get(name)
            if info is None:
                continue
            for key in keys:
                value = info.labels.get(key)
                if value is not None:
                    out |= snapshot.domain(key, value)
        return out

    @staticmethod
    def diagnose(ev: Evaluation, snapshot: Snapshot) -> dict[str, Status]:
        """Why each infeasible node was rejected: its first failing filter, in order."""
        statuses: dict[str, Status] = {}
        for name, info in snapshot.nodes.items():
            if info.node is None or name in ev.feasible:
                continue
            for i, plugin in enumerate(ev.filters):
                status = ev.failures[i].get(name)
                if status is not None:
                    statuses[name] = status.with_plugin(plugin.NAME)
                    break
        return statuses


def log_weight(size: int) -> float:
    """``topologyNormalizingWeight``: ln(domains + 2)."""
    return math.log(size + 2)
