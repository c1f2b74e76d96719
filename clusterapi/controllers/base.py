"""The controller framework: what a controller declares and how it is woken.

A ``Controller`` names the kind it reconciles and a ``reconcile(namespace, name)`` function
that re-reads state, converges it through the store, and returns how long to wait before
looking again (or None when converged). It is level-triggered: it never trusts the event that
woke it, so it is safe to run twice or concurrently (lost compare-and-swap races are retried).
``watches`` maps other kinds to the keys they wake (a ReplicaSet wakes its owning Deployment).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clusterapi.resources.registry import Kind

Obj = dict[str, Any]
Key = tuple[str, str]
Reconcile = Callable[[str, str], float | None]
KeyMapper = Callable[[Obj], Iterable[Key]]


@dataclass(frozen=True)
class Controller:
    """One control loop (see the module docstring)."""

    name: str
    kind: str
    reconcile: Reconcile
    watches: Mapping[str, KeyMapper] = field(default_factory=dict)
    # Loops that must run once in the cluster run only on the holder of their Lease.
    singleton: bool = False
    # Whether the periodic resync enqueues every object of ``kind``.
    resync: bool = True
    # Which changes of ``kind`` itself wake it (None: all). The scheduler cares only about
    # pods waiting for it, not the thousands of status reports of running ones.
    accepts: Callable[[Obj], bool] | None = None
    # Keys the periodic resync enqueues as well (a loop without a per-object resync still
    # needs a periodic look, for wake-ups lost with a worker or a broker).
    resync_keys: Callable[[], Iterable[Key]] | None = None

    def keys_for(self, kind: str, obj: Obj) -> list[Key]:
        """The keys of this controller that a change to ``obj`` (of ``kind``) wakes."""
        keys: list[Key] = []
        if kind == self.kind and (self.accepts is None or self.accepts(obj)):
            meta = obj.get("metadata") or {}
            keys.append((str(meta.get("namespace", "")), str(meta.get("name", ""))))
        mapper = self.watches.get(kind)
        if mapper is not None:
            keys.extend(k for k in mapper(obj) if k not in keys)
        return keys


def owners(kind: str) -> KeyMapper:
    """A mapper waking the controlling owner of the given kind (ownerReferences)."""

    def mapper(obj: Obj) -> Iterable[Key]:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if ref.get("kind") == kind and ref.get("controller"):
                yield (str(meta.get("namespace", "")), str(ref.get("name", "")))

    return mapper


def namespace_of(obj: Obj) -> Iterable[Key]:
    """A mapper waking the namespace an object lives in."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    if namespace:
        yield ("", str(namespace))


def namespace_of_named(name: str) -> KeyMapper:
    """A mapper waking the namespace that holds an object called ``name`` (the one object a
    namespace-filling controller keeps in each namespace)."""

    def mapper(obj: Obj) -> Iterable[Key]:
        meta = obj.get("metadata") or {}
        if meta.get("name") == name and meta.get("namespace"):
            yield ("", str(meta["namespace"]))

    return mapper


def namespace_of_leaving(obj: Obj) -> Iterable[Key]:
    """A mapper waking the namespace of an object that is going away (being deleted)."""
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        yield from namespace_of(obj)


def active_namespace(name: str) -> Obj | None:
    """The namespace ``name`` unless it is missing or terminating (nothing is added to a
    namespace that is going away: the namespace controller is emptying it)."""
    from clusterapi import store
    from clusterapi.resources import by_kind
    from clusterapi.store.errors import ApiError

    namespace_kind = by_kind("v1", "Namespace")
    assert namespace_kind is not None
    try:
        namespace = store.get(namespace_kind, "", name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    if namespace["metadata"].get("deletionTimestamp") or (
        (namespace.get("status") or {}).get("phase") == "Terminating"
    ):
        return None
    return namespace


def write_status(kind: Kind, owner: Obj, status: Obj, *, field_manager: str) -> Obj | None:
    """Write ``status`` through the status subresource unless it is already so.

    Returns the object as stored (``owner`` itself when nothing changed), or None when it is
    gone or was replaced by a namesake (another uid) meanwhile; conflicts are retried.
    """
    if owner.get("status") == status:
        return owner
    from clusterapi import store
    from clusterapi.store.errors import ApiError

    meta = owner["metadata"]
    uid = meta["uid"]

    def mutate(current: Obj) -> Obj:
        if current["metadata"]["uid"] != uid:
            raise ApiError(404, "NotFound", "the object was replaced")
        current["status"] = status
        return current

    try:
        return store.guaranteed_update(
            kind,
            meta.get("namespace", ""),
            meta["name"],
            mutate,
            subresource="status",
            field_manager=field_manager,
        ).obj
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
        return None
