"""The namespace controller: empties a Terminating namespace, then lets it go.

Deleting a namespace marks it Terminating (its ``spec.finalizers`` hold it). This controller
deletes every namespaced object in it; once none remain, it removes the ``kubernetes``
finalizer, and the store then removes the namespace.
"""

from __future__ import annotations

from clusterapi import store
from clusterapi.controllers.base import Controller, namespace_of_leaving
from clusterapi.resources import KINDS, by_kind
from clusterapi.store.errors import ApiError

FINALIZER = "kubernetes"


def reconcile(_namespace: str, name: str) -> float | None:
    """Converge one namespace; returns a retry delay while objects remain."""
    kind = by_kind("v1", "Namespace")
    assert kind is not None
    try:
        namespace = store.get(kind, "", name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    if not namespace["metadata"].get("deletionTimestamp"):
        return None
    remaining = 0
    for content_kind in KINDS:
        if content_kind.namespaced and not content_kind.review:
            store.delete_collection(content_kind, name)
            remaining += len(store.list_objects(content_kind, name).raw)
    if remaining:
        return 1.0
    finalizers = [f for f in namespace.get("spec", {}).get("finalizers", []) if f != FINALIZER]

    def drop_finalizer(obj: store.objects.Obj) -> store.objects.Obj:
        obj.setdefault("spec", {})["finalizers"] = finalizers
        return obj

    try:
        store.guaranteed_update(kind, "", name, drop_finalizer, subresource="finalize")
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
    return None


CONTROLLER = Controller(
    name="namespace",
    kind="Namespace",
    reconcile=reconcile,
    # A pod going away may be the last thing a Terminating namespace was waiting for (the
    # reconcile also looks again every second while anything remains).
    watches={"Pod": namespace_of_leaving},
)
