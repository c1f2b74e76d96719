"""core/v1 Endpoints: the addresses behind a Service (legacy form of EndpointSlice)."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="",
    version="v1",
    kind="Endpoints",
    plural="endpoints",
    short_names=("ep",),
    has_status=False,
    singular="endpoints",
)
