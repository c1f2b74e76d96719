"""core/v1 ResourceQuota: aggregate resource limits per namespace."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="",
    version="v1",
    kind="ResourceQuota",
    plural="resourcequotas",
    short_names=("quota",),
    subresources=("status",),
    delete_returns_object=True,
)
