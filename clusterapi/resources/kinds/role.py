"""rbac.authorization.k8s.io/v1 Role: permissions within one namespace."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="rbac.authorization.k8s.io",
    version="v1",
    kind="Role",
    plural="roles",
    has_status=False,
)
