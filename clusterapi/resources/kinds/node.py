"""core/v1 Node: a machine (or simulated machine) that runs pods, registered by its node agent."""

from __future__ import annotations

from clusterapi.resources.registry import Kind, Obj

# NodeSystemInfo's fields are plain strings upstream (no omitempty): a missing one decodes as
# "" rather than failing validation, so a Node created with a partial nodeInfo is accepted.
_NODE_INFO_FIELDS = (
    "machineID",
    "systemUUID",
    "bootID",
    "kernelVersion",
    "osImage",
    "containerRuntimeVersion",
    "kubeletVersion",
    "kubeProxyVersion",
    "operatingSystem",
    "architecture",
)


def _defaults(obj: Obj) -> None:
    status = obj.get("status")
    info = status.get("nodeInfo") if isinstance(status, dict) else None
    if isinstance(info, dict):
        for key in _NODE_INFO_FIELDS:
            info.setdefault(key, "")


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
    defaults=_defaults,
)
