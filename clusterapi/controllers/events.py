"""Recording core/v1 Events about objects, deduplicated as upstream's event recorder does.

An event with the same involved object, type, reason, message and source as an existing one
increments that event's ``count`` and ``lastTimestamp`` instead of creating another, so a loop
that reports the same problem every few seconds leaves one growing Event, not thousands.
"""

from __future__ import annotations

import hashlib
from typing import Any

from clusterapi import store
from clusterapi.core.errors import ApiError
from clusterapi.resources import by_kind

Obj = dict[str, Any]
NORMAL = "Normal"
WARNING = "Warning"


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

    try:
        store.guaranteed_update(kind, namespace, name, bump, field_manager=component)
        return
    except ApiError as exc:
        if exc.reason != "NotFound":
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
        elif exc.reason not in ("NotFound", "Forbidden"):
            raise
