"""apps/v1 DaemonSet: one pod on every eligible node."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    spec = defaults.spec_of(obj)
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    defaults.pod_template(spec.get("template"))
    status = defaults.status_of(obj)
    for key in (
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
    ):
        status.setdefault(key, 0)


KIND = Kind(
    group="apps",
    version="v1",
    kind="DaemonSet",
    plural="daemonsets",
    short_names=("ds",),
    categories=("all",),
    subresources=("status",),
    defaults=_defaults,
)
