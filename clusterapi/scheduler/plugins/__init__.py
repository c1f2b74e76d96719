"""The in-tree scheduler plugins, one module per plugin, and the registry naming them.

Each module declares ``NAME``, its failure reasons, one plugin class and ``new(args)``,
the factory the framework calls with the profile's arguments for that plugin. Adding a
plugin is one module and one line here; enabling it is a line in a ``Profile``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from clusterapi.scheduler.framework import Plugin
from clusterapi.scheduler.plugins import (
    balanced_allocation,
    inter_pod_affinity,
    node_affinity,
    node_name,
    node_ports,
    node_resources_fit,
    node_unschedulable,
    pod_topology_spread,
    taint_toleration,
)

Factory = Callable[[Mapping[str, Any]], Plugin]

IN_TREE: dict[str, Factory] = {
    node_unschedulable.NAME: node_unschedulable.new,
    node_name.NAME: node_name.new,
    taint_toleration.NAME: taint_toleration.new,
    node_affinity.NAME: node_affinity.new,
    node_ports.NAME: node_ports.new,
    node_resources_fit.NAME: node_resources_fit.new,
    balanced_allocation.NAME: balanced_allocation.new,
    pod_topology_spread.NAME: pod_topology_spread.new,
    inter_pod_affinity.NAME: inter_pod_affinity.new,
}

__all__ = ["IN_TREE", "Factory"]
