"""TaintToleration: taints keep pods away unless tolerated.

Filter: a ``NoSchedule`` or ``NoExecute`` taint the pod does not tolerate rules the node out
(preemption cannot help). Score: the number of untolerated ``PreferNoSchedule`` taints,
normalized in reverse, so nodes with fewer of them score higher.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, ClassVar

from clusterapi.scheduler.framework import (
    DO_NOT_SCHEDULE,
    MAX_NODE_SCORE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    Toleration,
    default_normalize,
    first_untolerated,
    tolerated,
    unresolvable,
)

NAME = "TaintToleration"
# Upstream stopped naming the taint in 1.34: a taint's value may be private to the cluster.
ERR_REASON_NOT_MATCH = "node(s) had untolerated taint(s)"
PRE_SCORE_KEY = "PreScore" + NAME

_REJECTED = unresolvable(ERR_REASON_NOT_MATCH, plugin=NAME)


class TaintToleration:
    NAME: ClassVar[str] = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        if first_untolerated(node.taints, pod.tolerations, DO_NOT_SCHEDULE) is None:
            return None
        return _REJECTED

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]
    ) -> Status | None:
        # Only tolerations that can cover PreferNoSchedule (or any effect) matter here.
        prefer = tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))
        state.write(PRE_SCORE_KEY, prefer)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        tolerations: tuple[Toleration, ...] = state.read(PRE_SCORE_KEY) or ()
        return sum(
            1
            for taint in node.taints
            if taint.effect == "PreferNoSchedule" and not tolerated(tolerations, taint)
        )

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        if scores and not any(scores.values()):
            # The common case (no PreferNoSchedule taints anywhere), without a Python loop.
            scores.update(dict.fromkeys(scores, MAX_NODE_SCORE))
            return
        default_normalize(scores, reverse=True)


def new(args: Mapping[str, Any]) -> TaintToleration:
    return TaintToleration()
