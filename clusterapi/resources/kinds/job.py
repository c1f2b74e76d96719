"""batch/v1 Job: pods that run to completion."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    spec = defaults.spec_of(obj)
    spec.setdefault("parallelism", 1)
    if "completions" not in spec:
        spec["completions"] = 1
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    spec.setdefault("manualSelector", None)
    if spec["manualSelector"] is None:
        del spec["manualSelector"]
    template = spec.get("template")
    if isinstance(template, dict):
        defaults.pod_template(template)
        _generated_selector(obj, spec, template)
    defaults.status_of(obj)


def _generated_selector(obj: Obj, spec: Obj, template: Obj) -> None:
    """Upstream generates a Job's selector from its uid unless ``manualSelector`` is set."""
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid"), meta.get("name")
    if spec.get("manualSelector") or not uid or spec.get("selector"):
        return
    labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


KIND = Kind(
    group="batch",
    version="v1",
    kind="Job",
    plural="jobs",
    categories=("all",),
    subresources=("status",),
    field_selectors={"status.successful": lambda o: str(o.get("status", {}).get("successful", 0))},
    defaults=_defaults,
)
