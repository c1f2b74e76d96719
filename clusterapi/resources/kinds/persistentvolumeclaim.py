"""core/v1 PersistentVolumeClaim: a request for storage by a user."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    spec = defaults.spec_of(obj)
    spec.setdefault("volumeMode", "Filesystem")
    defaults.status_of(obj).setdefault("phase", "Pending")


KIND = Kind(
    group="",
    version="v1",
    kind="PersistentVolumeClaim",
    plural="persistentvolumeclaims",
    short_names=("pvc",),
    subresources=("status",),
    delete_returns_object=True,
    defaults=_defaults,
)
