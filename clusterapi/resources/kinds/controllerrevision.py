"""apps/v1 ControllerRevision: an immutable snapshot of a StatefulSet's or DaemonSet's template."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="apps",
    version="v1",
    kind="ControllerRevision",
    plural="controllerrevisions",
    has_status=False,
)
