"""core/v1 ConfigMap: configuration data as key/value pairs."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="",
    version="v1",
    kind="ConfigMap",
    plural="configmaps",
    short_names=("cm",),
    has_status=False,
)
