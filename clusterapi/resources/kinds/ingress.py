"""networking.k8s.io/v1 Ingress: HTTP routing from outside to Services."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    defaults.status_of(obj).setdefault("loadBalancer", {})


KIND = Kind(
    group="networking.k8s.io",
    version="v1",
    kind="Ingress",
    plural="ingresses",
    short_names=("ing",),
    subresources=("status",),
    defaults=_defaults,
)
