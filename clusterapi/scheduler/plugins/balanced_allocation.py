"""NodeResourcesBalancedAllocation: prefer nodes whose resource use becomes more even.

For cpu and memory (by default) each node's utilisation fractions are taken with the pod's
requests and without them; their standard deviation gives a balance in 0..1 for each.
The score rewards the change (upstream since 1.36): no change scores 75, going from
perfectly balanced to perfectly unbalanced 50, the reverse 100. Pods that request nothing
are not scored by this plugin (they would all pile onto the same node).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from clusterapi.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
)
from clusterapi.scheduler.plugins.node_resources_fit import node_amounts, pod_amount

NAME = "NodeResourcesBalancedAllocation"
DEFAULT_RESOURCES = ("cpu", "memory")


def balance(fractions: Sequence[float]) -> float:
    """1 - the standard deviation of the utilisation fractions (each capped at 1)."""
    if len(fractions) == 2:
        return 1 - abs(fractions[0] - fractions[1]) / 2
    if len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        return 1 - math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    return 1.0


def balanced_score(with_pod: Sequence[float], without_pod: Sequence[float]) -> int:
    half = MAX_NODE_SCORE / 2
    change = balance(with_pod) * MAX_NODE_SCORE - balance(without_pod) * MAX_NODE_SCORE
    return int(half + (half + change) / 2)


class BalancedAllocation:
    NAME: ClassVar[str] = NAME

    def __init__(self, resources: Sequence[str] = DEFAULT_RESOURCES) -> None:
        self.resources = tuple(resources)

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]
    ) -> Status | None:
        return SKIP if pod.best_effort else None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        with_pod: list[float] = []
        without_pod: list[float] = []
        for resource in self.resources:
            request = pod_amount(pod, resource, non_zero=False)
            if request == 0 and resource not in ("cpu", "memory", "ephemeral-storage"):
                continue
            allocatable, requested = node_amounts(node, resource, non_zero=False)
            if allocatable == 0:
                continue
            with_pod.append(min((requested + request) / allocatable, 1.0))
            without_pod.append(min(requested / allocatable, 1.0))
        return balanced_score(with_pod, without_pod)


def new(args: Mapping[str, Any]) -> BalancedAllocation:
    names = tuple(str(r["name"]) for r in args.get("resources") or ())
    return BalancedAllocation(names or DEFAULT_RESOURCES)
