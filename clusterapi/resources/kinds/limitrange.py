"""core/v1 LimitRange: per-object resource defaults and bounds in a namespace."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="",
    version="v1",
    kind="LimitRange",
    plural="limitranges",
    short_names=("limits",),
    has_status=False,
)
