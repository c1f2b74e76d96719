"""core/v1 Node: a machine (or simulated machine) that runs pods, registered by its node agent."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="",
    version="v1",
    kind="Node",
    plural="nodes",
    namespaced=False,
    keep_status_on_create=True,
    short_names=("no",),
    subresources=("status",),
    field_selectors={
        "spec.unschedulable": lambda o: str(
            bool(o.get("spec", {}).get("unschedulable", False))
        ).lower()
    },
)
