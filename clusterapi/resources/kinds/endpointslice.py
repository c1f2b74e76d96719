"""discovery.k8s.io/v1 EndpointSlice: a slice of the endpoints behind a Service."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="discovery.k8s.io",
    version="v1",
    kind="EndpointSlice",
    plural="endpointslices",
    has_status=False,
)
