"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take no new pods.

A pod that tolerates the ``node.kubernetes.io/unschedulable:NoSchedule`` taint may still go
there (DaemonSet pods do), as upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from clusterapi.scheduler.framework import (
    TAINT_UNSCHEDULABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    Taint,
    tolerated,
    unresolvable,
)

NAME = "NodeUnschedulable"
ERR_REASON_UNSCHEDULABLE = "node(s) were unschedulable"

_CORDON = Taint(TAINT_UNSCHEDULABLE, "", "NoSchedule")
_REJECTED = unresolvable(ERR_REASON_UNSCHEDULABLE, plugin=NAME)


class NodeUnschedulable:
    NAME: ClassVar[str] = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.unschedulable or tolerated(pod.tolerations, _CORDON):
            return None
        return _REJECTED


def new(args: Mapping[str, Any]) -> NodeUnschedulable:
    return NodeUnschedulable()
