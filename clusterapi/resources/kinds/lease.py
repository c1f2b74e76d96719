"""coordination.k8s.io/v1 Lease: node heartbeats and leader election."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="coordination.k8s.io",
    version="v1",
    kind="Lease",
    plural="leases",
    has_status=False,
)
