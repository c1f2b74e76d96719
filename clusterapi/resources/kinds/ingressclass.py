"""networking.k8s.io/v1 IngressClass: which controller implements an Ingress."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="networking.k8s.io",
    version="v1",
    kind="IngressClass",
    plural="ingressclasses",
    namespaced=False,
    has_status=False,
)
