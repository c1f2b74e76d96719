"""NodeAffinity: ``nodeSelector`` and node affinity.

Filter: the node's labels must satisfy ``spec.nodeSelector`` and, when given, at least one
of the required node selector terms (``matchExpressions`` on labels, ``matchFields`` on
``metadata.name``); no preemption can change a node's labels, so this is unresolvable.
Score: the sum of the weights of the preferred terms the node satisfies, normalized so the
best node gets 100.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, ClassVar

from clusterapi.scheduler.framework import (
    SKIP,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    default_normalize,
    unresolvable,
)

NAME = "NodeAffinity"
ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"

_REJECTED = unresolvable(ERR_REASON_POD, plugin=NAME)


class NodeAffinity:
    NAME: ClassVar[str] = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.required_node_affinity is not None else SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        required = pod.required_node_affinity
        if required is None or required.matches(node):
            return None
        return _REJECTED

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]
    ) -> Status | None:
        return None if pod.preferred_node_affinity else SKIP

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(p.weight for p in pod.preferred_node_affinity if p.term.matches(node))

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize(scores)


def new(args: Mapping[str, Any]) -> NodeAffinity:
    return NodeAffinity()
