"""NodePorts: a host port (per IP and protocol) can be taken by one pod per node.

``0.0.0.0`` (or no ``hostIP``) claims the port on every address, so it conflicts with any
use of the same port and protocol; a specific address conflicts with itself and with
``0.0.0.0``. Preemption may free a port, so the rejection is resolvable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from clusterapi.scheduler.framework import (
    SKIP,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    unschedulable,
)

NAME = "NodePorts"
ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
_ANY = "0.0.0.0"  # noqa: S104 - the wildcard address of a port spec, not a bind

_REJECTED = unschedulable(ERR_REASON, plugin=NAME)


def conflicts(wanted: tuple[str, str, int], used: Mapping[tuple[str, str, int], int]) -> bool:
    ip, protocol, port = wanted
    if ip == _ANY:
        return any(p == port and proto == protocol for (_i, proto, p) in used)
    return (ip, protocol, port) in used or (_ANY, protocol, port) in used


class NodePorts:
    NAME: ClassVar[str] = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.host_ports else SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        used = node.used_ports
        if used and any(conflicts(port, used) for port in pod.host_ports):
            return _REJECTED
        return None


def new(args: Mapping[str, Any]) -> NodePorts:
    return NodePorts()
