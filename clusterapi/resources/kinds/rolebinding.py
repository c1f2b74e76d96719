"""rbac.authorization.k8s.io/v1 RoleBinding: grants a Role or ClusterRole within a namespace."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="rbac.authorization.k8s.io",
    version="v1",
    kind="RoleBinding",
    plural="rolebindings",
    has_status=False,
)
