"""core/v1 Service: a stable name and virtual IP in front of a set of pods."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    spec = defaults.spec_of(obj)
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    defaults.status_of(obj).setdefault("loadBalancer", {})


KIND = Kind(
    group="",
    version="v1",
    kind="Service",
    plural="services",
    short_names=("svc",),
    categories=("all",),
    subresources=("status",),
    delete_returns_object=True,
    field_selectors={
        "spec.clusterIP": lambda o: str(o.get("spec", {}).get("clusterIP", "")),
        "spec.type": lambda o: str(o.get("spec", {}).get("type", "")),
    },
    defaults=_defaults,
)
