"""Recording core/v1 Events about objects, deduplicated as upstream's event recorder does.

An event with the same involved object, type, reason, message and source as an existing one
increments that event's ``count`` and ``lastTimestamp`` instead of creating another, so a loop
that reports the same problem every few seconds leaves one growing Event, not thousands.

Whether an event is new is decided from memory, as upstream's correlator keeps an LRU cache
of the events it recorded (4,096 entries): a name recorded before is counted up at once, any
other is created at once. Most events are new (a pod's ``Scheduled``, a ReplicaSet's
``SuccessfulCreate``), so asking the store first would cost each one a failed read. The
store stays the judge: a create that finds the event exists (recorded by another worker or
before a restart) counts it up instead, and a count-up that finds it gone creates it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from clusterapi import store
from clusterapi.core.errors import ApiError
from clusterapi.resources import by_kind

Obj = dict[str, Any]
NORMAL = "Normal"
WARNING = "Warning"
# Upstream's maxLruCacheEntries.
REMEMBERED = 4096

_recorded: OrderedDict[tuple[str, str], None] = OrderedDict()
_recorded_guard = threading.Lock()


def _remember(namespace: str, name: str) -> bool:
    """Note an event as recorded; whether it was already known."""
    key = (namespace, name)
    with _recorded_guard:
        known = key in _recorded
        _recorded[key] = None
        _recorded.move_to_end(key)
        while len(_recorded) > REMEMBERED:
            _recorded.popitem(last=False)
    return known


def _forget(namespace: str, name: str) -> None:
    with _recorded_guard:
        _recorded.pop((namespace, name), None)


def _event_name(involved: Obj, digest: str) -> str:
    name = str((involved.get("metadata") or {}).get("name", "object"))
    return f"{name}.{digest[:16]}"


def record(
    involved: Obj, type_: str, reason: str, message: str, *, component: str, host: str = ""
) -> None:
    """Record (or count again) an event about ``involved`` (an object as stored)."""
    kind = by_kind("v1", "Event")
    assert kind is not None
    meta = involved.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    key = "\x00".join(
        (
            str(involved.get("kind")),
            namespace,
            str(meta.get("name")),
            str(meta.get("uid")),
            type_,
            reason,
            message,
            component,
            host,
        )
    )
    name = _event_name(involved, hashlib.sha256(key.encode()).hexdigest())
    now = store.now()

    def bump(event: Obj) -> Obj:
        event["count"] = int(event.get("count") or 1) + 1
        event["lastTimestamp"] = now
        return event

    if _remember(namespace, name):
        try:
            store.guaranteed_update(kind, namespace, name, bump, field_manager=component)
            return
        except ApiError as exc:
            if exc.reason != "NotFound":
                _forget(namespace, name)
                raise
    source: Obj = {"component": component}
    if host:
        source["host"] = host
    event: Obj = {
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "kind": involved.get("kind"),
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "apiVersion": involved.get("apiVersion"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type_,
        "reportingComponent": component,
        "reportingInstance": host,
    }
    try:
        store.create(kind, event, namespace=namespace, field_manager=component)
    except ApiError as exc:
        if exc.reason == "AlreadyExists":
            store.guaranteed_update(kind, namespace, name, bump, field_manager=component)
            return
        # Not recorded (the namespace is missing or going away): the next try creates again.
        _forget(namespace, name)
        if exc.reason not in ("NotFound", "Forbidden"):
            raise
