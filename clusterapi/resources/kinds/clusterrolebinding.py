"""rbac.authorization.k8s.io/v1 ClusterRoleBinding: grants a ClusterRole cluster-wide."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="rbac.authorization.k8s.io",
    version="v1",
    kind="ClusterRoleBinding",
    plural="clusterrolebindings",
    namespaced=False,
    has_status=False,
)
