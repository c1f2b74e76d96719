"""The garbage collector: dependents go when their owners go.

Role
----
Objects name their owners in ``metadata.ownerReferences`` (apiVersion, kind, name, uid,
``controller``, ``blockOwnerDeletion``). Kubernetes' three deletion policies end here:

* **Background** (the default): the owner is removed at once; this loop then deletes every
  dependent whose owners are all gone (no object with the referenced uid). A dependent that
  still has a live owner only loses its dangling references.
* **Orphan**: the owner stays, marked with the ``orphan`` finalizer, while this loop removes
  the owner's references from its dependents; then it drops the finalizer and the owner goes.
* **Foreground**: the owner stays, marked with the ``foregroundDeletion`` finalizer, while
  this loop deletes its dependents (themselves in foreground when they may own things); once
  no dependent that blocks the owner (``blockOwnerDeletion: true``) remains, it drops the
  finalizer and the owner goes.

Flow
----
The key of a reconcile is one object: ``(namespace, "<plural>.<group>/<name>")``. It handles
that object *as an owner*:

* present and not being deleted → nothing to do (one read);
* being deleted with ``orphan`` → orphan its dependents, drop the finalizer;
* being deleted with ``foregroundDeletion`` → delete its dependents, wait for the blocking
  ones (looking again every ``WAIT_SECONDS``), drop the finalizer;
* absent → find the dependents still referencing it and delete (or un-reference) them, after
  confirming each owner's absence with a fresh read (never from a possibly stale list).

Wake-ups (``watches`` covers every kind) are chosen so that routine traffic costs nothing:

* a change to X wakes X's own key when X is being deleted, or when X is of a kind that owns
  things in the normal course (``OWNER_KINDS``: the workload kinds and Services) — so a
  Deployment or ReplicaSet deleted outright is noticed at once, while the hundreds of
  ConfigMaps, Secrets and RBAC objects written at bootstrap, and every pod, node and lease
  heartbeat, wake nothing;
* a change to X wakes the keys of X's owners when X is being deleted (a foreground owner may
  be waiting for it) or was created within ``YOUNG_SECONDS`` (a dependent created just after
  its owner was deleted is caught at once).

The periodic resync gives every namespace a **full pass** (key ``("", "<namespace>")``): one
index of the namespace's objects by uid, every ownerReference checked against it. Whatever the
event path leaves out (an owner of another kind deleted outright, a lost task) is collected
within a resync period.

Cost
----
* a woken key whose object is alive: one indexed read;
* an owner that is gone or being deleted with a finalizer: one scan of its namespace (every
  kind; a cluster-scoped owner scans everything), filtered on the raw JSON text before any
  decoding, plus one read per distinct owner of each dependent found (memoised per pass);
* a full pass: reading the namespace's objects once, decoding only those with
  ownerReferences or finalizers, plus one read per distinct cluster-scoped owner —
  O(size of the namespace) per namespace and resync period.

Deleting an owner with N dependents therefore costs one scan and N deletes, not N scans. In a
namespace that is itself being deleted nothing is scanned (the namespace controller removes
everything anyway).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from clusterapi import store
from clusterapi.controllers import pods
from clusterapi.controllers.base import Controller, Key, Obj
from clusterapi.resources import KINDS, by_kind
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

logger = logging.getLogger(__name__)

COMPONENT = "garbage-collector-controller"
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
# Kinds that own other objects in the normal course: any change to one wakes its own key, so
# its outright deletion is acted on at once (other kinds' deletions wait for the full pass).
OWNER_KINDS = frozenset(
    {
        "Deployment",
        "ReplicaSet",
        "ReplicationController",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Service",
    }
)
# Kinds that (almost) never own anything: as dependents of a foreground deletion they are
# deleted plainly, sparing them a finalizer round trip (and bound pods a second delete).
LEAF_KINDS = frozenset({"Pod", "Event", "Lease", "Endpoints", "EndpointSlice"})
# A dependent created this recently wakes its owners' keys (its owner may already be gone).
YOUNG_SECONDS = 30
# How often a foreground deletion looks again while blocking dependents remain.
WAIT_SECONDS = 1.0


# --- kinds and keys ---------------------------------------------------------------------------


@functools.cache
def _kinds() -> dict[str, Kind]:
    return {k.qualified_plural: k for k in KINDS if not k.review}


@functools.cache
def _kinds_by_group_kind() -> dict[tuple[str, str], Kind]:
    # An ownerReference may name another version of the owner's group (apps/v1beta1).
    return {(k.group, k.kind): k for k in reversed(KINDS) if not k.review}


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def owner_kind(ref: Obj) -> Kind | None:
    """The kind an ownerReference names, in any served version of its group."""
    api_version, kind_name = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
    found = by_kind(api_version, kind_name)
    if found is None:
        found = _kinds_by_group_kind().get((_group(api_version), kind_name))
    return found if found is not None and not found.review else None


def object_key(kind: Kind, namespace: str, name: str) -> Key:
    """The key of one object: ``(namespace, "<plural>.<group>/<name>")``."""
    return (namespace if kind.namespaced else "", f"{kind.qualified_plural}/{name}")


def _refers_to(ref: Obj, kind: Kind, name: str, uid: str | None) -> bool:
    return (
        ref.get("kind") == kind.kind
        and _group(str(ref.get("apiVersion") or "")) == kind.group
        and ref.get("name") == name
        and (uid is None or ref.get("uid") == uid)
    )


def _finalizers(obj: Obj) -> list[str]:
    return [str(f) for f in obj["metadata"].get("finalizers") or ()]


# --- wake-ups ---------------------------------------------------------------------------------


def wake(obj: Obj) -> Iterable[Key]:
    """The keys a change to ``obj`` wakes (see the module docstring)."""
    kind = by_kind(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
    meta = obj.get("metadata") or {}
    if kind is None or kind.review or not meta.get("name"):
        return
    namespace = str(meta.get("namespace") or "")
    deleting = bool(meta.get("deletionTimestamp"))
    if deleting or kind.kind in OWNER_KINDS:
        yield object_key(kind, namespace, str(meta["name"]))
    refs = meta.get("ownerReferences") or ()
    if not refs or not (deleting or _young(meta)):
        return
    for ref in refs:
        found = owner_kind(ref) if isinstance(ref, dict) else None
        if found is not None and ref.get("name"):
            yield object_key(found, namespace, str(ref["name"]))


def _young(meta: Obj) -> bool:
    created = pods.parse_time(meta.get("creationTimestamp"))
    return created is not None and pods.utcnow() - created < timedelta(seconds=YOUNG_SECONDS)


# --- one pass ---------------------------------------------------------------------------------


@dataclass
class _Pass:
    """Owner reads memoised for one reconcile: N dependents of one owner cost one read."""

    owners: dict[tuple[str, str, str], Obj | None] = field(default_factory=dict)

    def owner(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        key = (kind.qualified_plural, namespace, name)
        if key not in self.owners:
            try:
                self.owners[key] = store.get(kind, namespace, name)
            except ApiError as exc:
                if exc.reason != "NotFound":
                    raise
                self.owners[key] = None
        return self.owners[key]

    def forget(self, kind: Kind, namespace: str, name: str) -> None:
        self.owners.pop((kind.qualified_plural, namespace, name), None)

    def state(self, ref: Obj, dependent: Obj) -> str:
        """``absent``, ``waiting`` (deleting its dependents first) or ``solid``."""
        kind = owner_kind(ref)
        if kind is None:
            # An owner of a kind Berth does not serve cannot be checked: never collect.
            return "solid"
        dependent_ns = str(dependent["metadata"].get("namespace") or "")
        if kind.namespaced and not dependent_ns:
            # A cluster-scoped object cannot have a namespaced owner: the reference is void.
            return "absent"
        owner = self.owner(kind, dependent_ns if kind.namespaced else "", str(ref.get("name")))
        if owner is None or owner["metadata"]["uid"] != ref.get("uid"):
            return "absent"
        if owner["metadata"].get("deletionTimestamp") and FOREGROUND in _finalizers(owner):
            return "waiting"
        return "solid"


def _dependents(owner: Kind, namespace: str, name: str, uid: str | None) -> list[tuple[Kind, Obj]]:
    """Objects whose ownerReferences name this owner (any uid when ``uid`` is None).

    Namespaced owners can only have dependents in their own namespace; cluster-scoped ones
    anywhere. The raw JSON is screened for the owner's name before anything is decoded.
    """
    needle = f'"{name}"'
    found: list[tuple[Kind, Obj]] = []
    for kind in _kinds().values():
        if owner.namespaced and not kind.namespaced:
            continue
        scope = namespace if owner.namespaced else None
        for raw in store.list_objects(kind, scope).raw:
            if '"ownerReferences"' not in raw or needle not in raw:
                continue
            obj = store.objects.decode(raw)
            refs = obj["metadata"].get("ownerReferences") or ()
            if any(isinstance(r, dict) and _refers_to(r, owner, name, uid) for r in refs):
                found.append((kind, obj))
    return found


def _update(kind: Kind, obj: Obj, change: Callable[[Obj], None]) -> None:
    """Change ``obj`` by compare-and-swap, unless it was deleted or replaced meanwhile."""
    meta = obj["metadata"]
    uid = meta["uid"]

    class _Gone(Exception):
        pass

    def mutate(current: Obj) -> Obj:
        if current["metadata"]["uid"] != uid:
            raise _Gone
        change(current)
        return current

    try:
        store.guaranteed_update(
            kind, meta.get("namespace", ""), meta["name"], mutate, field_manager=COMPONENT
        )
    except _Gone:
        return
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise


def _drop_references(kind: Kind, obj: Obj, uids: set[str]) -> None:
    def drop(current: Obj) -> None:
        meta = current["metadata"]
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") not in uids]
        if refs:
            meta["ownerReferences"] = refs
        else:
            meta.pop("ownerReferences", None)

    _update(kind, obj, drop)


def _remove_finalizer(kind: Kind, obj: Obj, finalizer: str) -> None:
    def drop(current: Obj) -> None:
        meta = current["metadata"]
        kept = [f for f in meta.get("finalizers") or () if f != finalizer]
        if kept:
            meta["finalizers"] = kept
        else:
            meta.pop("finalizers", None)

    _update(kind, obj, drop)


def attempt_to_delete(kind: Kind, dependent: Obj, work: _Pass) -> None:
    """Collect ``dependent`` if its owners are gone (upstream's ``attemptToDeleteItem``)."""
    meta = dependent["metadata"]
    finalizers = _finalizers(dependent)
    if meta.get("deletionTimestamp") and FOREGROUND not in finalizers:
        return  # already going
    solid: list[Obj] = []
    dangling: list[Obj] = []
    waiting: list[Obj] = []
    for ref in meta.get("ownerReferences") or ():
        if not isinstance(ref, dict):
            continue
        state = work.state(ref, dependent)
        if state == "solid":
            solid.append(ref)
        elif state == "waiting":
            waiting.append(ref)
        else:
            dangling.append(ref)
    if not dangling and not waiting:
        return
    if solid:
        # A live owner keeps the dependent; only the references to the others go.
        _drop_references(kind, dependent, {str(r.get("uid")) for r in (*dangling, *waiting)})
        return
    if meta.get("deletionTimestamp"):
        return
    if ORPHAN in finalizers:
        policy: str | None = "Orphan"
    elif FOREGROUND in finalizers or (waiting and kind.kind not in LEAF_KINDS):
        # Foreground all the way down, so a foreground owner outlives its grandchildren.
        # Leaf kinds own nothing: plain deletion spares them a finalizer round trip.
        policy = "Foreground"
    else:
        policy = None  # Background
    try:
        store.delete(
            kind,
            meta.get("namespace", ""),
            meta["name"],
            precondition_uid=meta["uid"],
            propagation=policy,
        )
    except ApiError as exc:
        if exc.reason not in ("NotFound", "Conflict"):
            raise


def _blocks(dependent: Obj, owner_uid: str) -> bool:
    return any(
        r.get("uid") == owner_uid and r.get("blockOwnerDeletion")
        for r in dependent["metadata"].get("ownerReferences") or ()
    )


def process_deleting_owner(
    kind: Kind,
    owner: Obj,
    find_dependents: Callable[[], list[tuple[Kind, Obj]]],
    work: _Pass,
) -> float | None:
    """Orphan or delete the dependents of an owner held by a GC finalizer; then release it."""
    finalizers = _finalizers(owner)
    uid = owner["metadata"]["uid"]
    if ORPHAN in finalizers:
        for dependent_kind, dependent in find_dependents():
            _drop_references(dependent_kind, dependent, {uid})
        _remove_finalizer(kind, owner, ORPHAN)
        return None
    if FOREGROUND not in finalizers:
        return None
    for dependent_kind, dependent in find_dependents():
        attempt_to_delete(dependent_kind, dependent, work)
    if any(_blocks(dependent, uid) for _kind, dependent in find_dependents()):
        return WAIT_SECONDS
    _remove_finalizer(kind, owner, FOREGROUND)
    return None


# --- reconcile --------------------------------------------------------------------------------


def reconcile(namespace: str, name: str) -> float | None:
    """One object as an owner, or (a key without ``/``) a full pass over one namespace."""
    if "/" not in name:
        return full_pass(name)
    return _reconcile_object(namespace, name)


def _namespace_going(namespace: str) -> bool:
    namespace_kind = by_kind("v1", "Namespace")
    assert namespace_kind is not None
    try:
        obj = store.get(namespace_kind, "", namespace)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return True
        raise
    return bool(obj["metadata"].get("deletionTimestamp"))


def _reconcile_object(namespace: str, key_name: str) -> float | None:
    plural, _, name = key_name.partition("/")
    kind = _kinds().get(plural)
    if kind is None or not name:
        return None
    scope = namespace if kind.namespaced else ""
    work = _Pass()
    owner = work.owner(kind, scope, name)
    if owner is not None:
        if not owner["metadata"].get("deletionTimestamp"):
            return None
        uid = owner["metadata"]["uid"]
        return process_deleting_owner(
            kind, owner, lambda: _dependents(kind, scope, name, uid), work
        )
    if kind.namespaced and _namespace_going(scope):
        return None
    for dependent_kind, dependent in _dependents(kind, scope, name, None):
        attempt_to_delete(dependent_kind, dependent, work)
    return None


def full_pass(namespace: str) -> float | None:
    """Check every ownerReference in ``namespace`` against an index of what exists there.

    References to cluster-scoped owners (a Node) are not indexed: they are checked with one
    read per distinct owner, so a pass never lists the cluster-scoped kinds.
    """
    if _namespace_going(namespace):
        return None
    objects: list[tuple[Kind, Obj]] = []
    existing: set[str] = set()
    for kind in _kinds().values():
        if not kind.namespaced:
            continue
        for raw in store.list_objects(kind, namespace).raw:
            if '"ownerReferences"' in raw or '"finalizers"' in raw:
                obj = store.objects.decode(raw)
                objects.append((kind, obj))
                existing.add(obj["metadata"]["uid"])
            else:
                existing.add(_uid_of(raw))
    dependents_of: dict[str, list[tuple[Kind, Obj]]] = {}
    suspects: dict[str, tuple[Kind, Obj]] = {}
    for kind, obj in objects:
        for ref in obj["metadata"].get("ownerReferences") or ():
            if not isinstance(ref, dict):
                continue
            dependents_of.setdefault(str(ref.get("uid")), []).append((kind, obj))
            ref_kind = owner_kind(ref)
            cluster_owner = ref_kind is not None and not ref_kind.namespaced
            if cluster_owner or ref.get("uid") not in existing:
                suspects[obj["metadata"]["uid"]] = (kind, obj)
    work = _Pass()
    waiting = False
    for kind, obj in objects:
        if obj["metadata"].get("deletionTimestamp") and {ORPHAN, FOREGROUND} & set(
            _finalizers(obj)
        ):
            indexed = dependents_of.get(obj["metadata"]["uid"], [])
            again = process_deleting_owner(kind, obj, functools.partial(_fresh, indexed), work)
            waiting = waiting or again is not None
    for kind, obj in suspects.values():
        # The index may predate an owner created since: attempt_to_delete re-reads owners.
        attempt_to_delete(kind, obj, work)
    return WAIT_SECONDS if waiting else None


def _uid_of(raw: str) -> str:
    # Cheaper than decoding: the stored JSON always carries "uid":"<uuid>" in its metadata.
    start = raw.find('"uid":"')
    if start < 0:
        return ""
    start += len('"uid":"')
    return raw[start : raw.find('"', start)]


def _fresh(dependents: list[tuple[Kind, Obj]]) -> list[tuple[Kind, Obj]]:
    """Re-read indexed dependents (a foreground owner re-checks what is left)."""
    out: list[tuple[Kind, Obj]] = []
    for kind, obj in dependents:
        meta = obj["metadata"]
        try:
            current = store.get(kind, meta.get("namespace", ""), meta["name"])
        except ApiError as exc:
            if exc.reason == "NotFound":
                continue
            raise
        if current["metadata"]["uid"] == meta["uid"]:
            out.append((kind, current))
    return out


CONTROLLER = Controller(
    name="garbagecollector",
    # The resync enqueues one full pass per namespace; object keys come from ``watches``.
    kind="Namespace",
    reconcile=reconcile,
    watches={kind.kind: wake for kind in KINDS if not kind.review},
)
