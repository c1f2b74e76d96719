"""NodeResourcesFit: the pod's requests must fit in what the node has left.

Filter: for cpu, memory, ephemeral-storage and every extended resource the pod requests,
``request <= allocatable - requested by the pods already there``, and one more pod must fit
under the node's pod count. Every shortfall is reported (``Insufficient cpu``,
``Insufficient memory``, ``Too many pods``). A request larger than the node's whole
allocatable cannot be helped by preemption, so that status is unresolvable.

The pod's requests follow upstream's rule (``framework.pod_requests``): the larger of the
sum of its containers and its largest init container, plus the pod overhead.

Score (weight 1): ``LeastAllocated`` (the default, spreading pods out) or ``MostAllocated``
(bin-packing), each the weighted mean over the configured resources (cpu and memory,
weight 1 each) of ``(allocatable - requested) * 100 / allocatable`` or of
``requested * 100 / allocatable``. Scoring counts containers without a cpu or memory
request as asking 100m and 200Mi, so request-less pods still spread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from clusterapi.scheduler.framework import (
    MAX_NODE_SCORE,
    Code,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
)

NAME = "NodeResourcesFit"
LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
DEFAULT_RESOURCES: tuple[tuple[str, int], ...] = (("cpu", 1), ("memory", 1))


def insufficient(pod: PodInfo, node: NodeInfo) -> tuple[list[str], bool]:
    """The reasons the pod does not fit (upstream ``fitsRequest``) and whether any of them
    is unresolvable (the pod asks for more than the node has at all)."""
    reasons: list[str] = []
    unresolvable = False
    if len(node.pods) + 1 > node.alloc_pods:
        reasons.append("Too many pods")
        unresolvable = node.alloc_pods < 1
    if not (pod.cpu or pod.memory or pod.ephemeral or pod.scalar):
        return reasons, unresolvable
    if pod.cpu > 0 and pod.cpu > node.alloc_cpu - node.req_cpu:
        reasons.append("Insufficient cpu")
        unresolvable = unresolvable or pod.cpu > node.alloc_cpu
    if pod.memory > 0 and pod.memory > node.alloc_memory - node.req_memory:
        reasons.append("Insufficient memory")
        unresolvable = unresolvable or pod.memory > node.alloc_memory
    if pod.ephemeral > 0 and pod.ephemeral > node.alloc_ephemeral - node.req_ephemeral:
        reasons.append("Insufficient ephemeral-storage")
        unresolvable = unresolvable or pod.ephemeral > node.alloc_ephemeral
    for name, amount in pod.scalar.items():
        allocatable = node.alloc_scalar.get(name, 0)
        if amount > allocatable - node.req_scalar.get(name, 0):
            reasons.append(f"Insufficient {name}")
            unresolvable = unresolvable or amount > allocatable
    return reasons, unresolvable


def least_requested(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    # Request-less pods are counted at default sizes, which may exceed the node.
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


def pod_amount(pod: PodInfo, resource: str, *, non_zero: bool) -> int:
    if resource == "cpu":
        return pod.non_zero_cpu if non_zero else pod.cpu
    if resource == "memory":
        return pod.non_zero_memory if non_zero else pod.memory
    if resource == "ephemeral-storage":
        return pod.ephemeral
    return pod.scalar.get(resource, 0)


def node_amounts(node: NodeInfo, resource: str, *, non_zero: bool) -> tuple[int, int]:
    """(allocatable, requested) of a resource on a node."""
    if resource == "cpu":
        return node.alloc_cpu, node.non_zero_cpu if non_zero else node.req_cpu
    if resource == "memory":
        return node.alloc_memory, node.non_zero_memory if non_zero else node.req_memory
    if resource == "ephemeral-storage":
        return node.alloc_ephemeral, node.req_ephemeral
    return node.alloc_scalar.get(resource, 0), node.req_scalar.get(resource, 0)


class NodeResourcesFit:
    NAME: ClassVar[str] = NAME

    def __init__(
        self, strategy: str = LEAST_ALLOCATED, resources: Sequence[tuple[str, int]] = ()
    ) -> None:
        if strategy not in (LEAST_ALLOCATED, MOST_ALLOCATED):
            raise ValueError(f"unsupported NodeResourcesFit scoring strategy {strategy!r}")
        self.strategy = strategy
        self.resources = tuple(resources) or DEFAULT_RESOURCES
        self._scorer: Callable[[int, int], int] = (
            least_requested if strategy == LEAST_ALLOCATED else most_requested
        )
        # The default resources take a fast path; configured ones the general one.
        self._default = self.resources == DEFAULT_RESOURCES

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        # The common case first: room for one more pod and for every request.
        if (
            len(node.pods) < node.alloc_pods
            and pod.cpu <= node.alloc_cpu - node.req_cpu
            and pod.memory <= node.alloc_memory - node.req_memory
            and pod.ephemeral <= node.alloc_ephemeral - node.req_ephemeral
            and not pod.scalar
        ):
            return None
        reasons, unresolvable = insufficient(pod, node)
        if not reasons:
            return None
        code = Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE
        return Status(code, tuple(reasons), NAME)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scorer = self._scorer
        if self._default:
            total = 0
            weights = 0
            if node.alloc_cpu:
                total += scorer(node.non_zero_cpu + pod.non_zero_cpu, node.alloc_cpu)
                weights += 1
            if node.alloc_memory:
                total += scorer(node.non_zero_memory + pod.non_zero_memory, node.alloc_memory)
                weights += 1
            return total // weights if weights else 0
        total = weights = 0
        for resource, weight in self.resources:
            request = pod_amount(pod, resource, non_zero=True)
            if request == 0 and resource not in ("cpu", "memory", "ephemeral-storage"):
                continue  # an extended resource the pod does not use is not scored
            allocatable, requested = node_amounts(node, resource, non_zero=True)
            if allocatable == 0:
                continue
            total += scorer(requested + request, allocatable) * weight
            weights += weight
        return total // weights if weights else 0


def new(args: Mapping[str, Any]) -> NodeResourcesFit:
    strategy = args.get("scoringStrategy") or {}
    resources = tuple(
        (str(r["name"]), int(r.get("weight", 1))) for r in strategy.get("resources") or ()
    )
    return NodeResourcesFit(str(strategy.get("type") or LEAST_ALLOCATED), resources)
