"""rbac.authorization.k8s.io/v1 ClusterRole: permissions cluster-wide or reusable in namespaces."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="rbac.authorization.k8s.io",
    version="v1",
    kind="ClusterRole",
    plural="clusterroles",
    namespaced=False,
    has_status=False,
)
