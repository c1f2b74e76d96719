"""core/v1 PersistentVolume: a piece of storage in the cluster."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    spec = defaults.spec_of(obj)
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    defaults.status_of(obj).setdefault("phase", "Pending")


KIND = Kind(
    group="",
    version="v1",
    kind="PersistentVolume",
    plural="persistentvolumes",
    namespaced=False,
    short_names=("pv",),
    subresources=("status",),
    delete_returns_object=True,
    defaults=_defaults,
)
