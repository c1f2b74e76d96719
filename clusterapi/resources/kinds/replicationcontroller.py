"""core/v1 ReplicationController: the original replicated-pod controller."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    spec = defaults.spec_of(obj)
    spec.setdefault("replicas", 1)
    spec.setdefault("minReadySeconds", 0)
    defaults.template_labels_selector(spec)
    template = spec.get("template")
    if isinstance(template, dict) and not obj.get("metadata", {}).get("labels"):
        labels = (template.get("metadata") or {}).get("labels")
        if labels:
            obj["metadata"]["labels"] = dict(labels)
    defaults.pod_template(template)
    defaults.status_of(obj).setdefault("replicas", 0)


KIND = Kind(
    group="",
    version="v1",
    kind="ReplicationController",
    plural="replicationcontrollers",
    short_names=("rc",),
    categories=("all",),
    subresources=("status", "scale"),
    field_selectors={"status.replicas": lambda o: str(o.get("status", {}).get("replicas", 0))},
    defaults=_defaults,
)
