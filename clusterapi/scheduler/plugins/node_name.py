"""NodeName: a pod that names its node (``spec.nodeName``) fits that node only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from clusterapi.scheduler.framework import CycleState, NodeInfo, PodInfo, Status, unresolvable

NAME = "NodeName"
ERR_REASON = "node(s) didn't match the requested node name"

_REJECTED = unresolvable(ERR_REASON, plugin=NAME)


class NodeName:
    NAME: ClassVar[str] = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not pod.node_name or pod.node_name == node.name:
            return None
        return _REJECTED


def new(args: Mapping[str, Any]) -> NodeName:
    return NodeName()
