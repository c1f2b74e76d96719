"""batch/v1 CronJob: Jobs on a cron schedule."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    spec = defaults.spec_of(obj)
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict):
        job_template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        job_spec = job_template.get("spec")
        if isinstance(job_spec, dict):
            defaults.pod_template(job_spec.get("template"))
    defaults.status_of(obj)


KIND = Kind(
    group="batch",
    version="v1",
    kind="CronJob",
    plural="cronjobs",
    short_names=("cj",),
    categories=("all",),
    subresources=("status",),
    defaults=_defaults,
)
