"""metrics.k8s.io/v1beta1 NodeMetrics: a node's CPU and memory use (``kubectl top nodes``).

Computed, never stored: read from the newest sample its node agent reported
(``clusterapi.metrics.serving``), as metrics-server serves it.
"""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="metrics.k8s.io",
    version="v1beta1",
    kind="NodeMetrics",
    plural="nodes",
    namespaced=False,
    verbs=("get", "list"),
    has_status=False,
    reader="clusterapi.metrics.serving.read_nodes",
)
