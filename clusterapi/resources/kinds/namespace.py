"""core/v1 Namespace: a scope for names; deleting one deletes its contents first."""

from __future__ import annotations

from clusterapi.resources import defaults
from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and meta.get("name"):
        # Upstream labels every namespace with its own name (always overwritten), so that
        # network policies and selectors can pick namespaces by name.
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels["kubernetes.io/metadata.name"] = str(meta["name"])
    spec = defaults.spec_of(obj)
    if "finalizers" not in spec:
        spec["finalizers"] = ["kubernetes"]
    defaults.status_of(obj).setdefault("phase", "Active")


def _graceful(obj: Obj, grace: int | None) -> bool:
    """A namespace is Terminating until its contents are gone and spec.finalizers is empty."""
    if not (obj.get("spec") or {}).get("finalizers"):
        return False
    defaults.status_of(obj)["phase"] = "Terminating"
    return True


def _finalized(obj: Obj) -> bool:
    return not (obj.get("spec") or {}).get("finalizers")


KIND = Kind(
    group="",
    version="v1",
    kind="Namespace",
    plural="namespaces",
    namespaced=False,
    short_names=("ns",),
    subresources=("status", "finalize"),
    delete_returns_object=True,
    field_selectors={"status.phase": lambda o: str(o.get("status", {}).get("phase", ""))},
    defaults=_defaults,
    graceful=_graceful,
    finalized=_finalized,
)
