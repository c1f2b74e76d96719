"""storage.k8s.io/v1 StorageClass: a class of dynamically provisioned storage."""

from __future__ import annotations

from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


KIND = Kind(
    group="storage.k8s.io",
    version="v1",
    kind="StorageClass",
    plural="storageclasses",
    namespaced=False,
    short_names=("sc",),
    has_status=False,
    delete_returns_object=True,
    defaults=_defaults,
)
