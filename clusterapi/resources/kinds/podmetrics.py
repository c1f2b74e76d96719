"""metrics.k8s.io/v1beta1 PodMetrics: the CPU and memory use of a pod's containers
(``kubectl top pods``).

Computed, never stored: read from the newest sample the pod's node agent reported
(``clusterapi.metrics.serving``), as metrics-server serves it.
"""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="metrics.k8s.io",
    version="v1beta1",
    kind="PodMetrics",
    plural="pods",
    verbs=("get", "list"),
    has_status=False,
    reader="clusterapi.metrics.serving.read_pods",
)
