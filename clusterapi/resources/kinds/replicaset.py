"""apps/v1 ReplicaSet: keeps a number of identical pods running."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    spec = defaults.spec_of(obj)
    spec.setdefault("replicas", 1)
    defaults.pod_template(spec.get("template"))
    defaults.status_of(obj).setdefault("replicas", 0)


KIND = Kind(
    group="apps",
    version="v1",
    kind="ReplicaSet",
    plural="replicasets",
    short_names=("rs",),
    categories=("all",),
    subresources=("status", "scale"),
    field_selectors={"status.replicas": lambda o: str(o.get("status", {}).get("replicas", 0))},
    defaults=_defaults,
)
