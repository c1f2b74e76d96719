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

As client-go's recorder, ``record`` never fails or holds up its caller: with
``BERTH_EVENTS_MODE=batch`` (the default) it hands the event to a writer thread
(``core.behind``) and returns, and the new events queued meanwhile, by all the loops of the
worker, are created in one transaction (``store.create_many``): under load a loop's events
then cost it no turn at the store's write lock of their own. ``blocking`` writes each in the
caller's thread (the unit tests', whose transactions never commit). An event that cannot be
written is logged and dropped.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from clusterapi import store
from clusterapi.core.behind import WriteBehind
from clusterapi.core.errors import ApiError
from clusterapi.resources import by_kind
from clusterapi.resources.registry import Kind
from clusterapi.store.patch import clone

logger = logging.getLogger(__name__)

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


@dataclass
class _Report:
    """One ``record`` call, as handed to the writer."""

    namespace: str
    name: str
    event: Obj  # the Event to create when it is new
    component: str


def record(
    involved: Obj, type_: str, reason: str, message: str, *, component: str, host: str = ""
) -> None:
    """Record (or count again) an event about ``involved`` (an object as stored).

    Never fails the caller: an event that cannot be written is logged and dropped, as
    upstream's recorder does. Batch mode hands it to the writer thread and returns at once.
    """
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
    report = _Report(namespace, name, event, component)
    if settings.BERTH_EVENTS_MODE == "batch":
        _writer.put(report)
    else:
        _write([report])


def _write(reports: list[_Report]) -> None:
    """Create the new events of a batch in one transaction, then count up the known ones
    (a report of an event created earlier in the same batch among them)."""
    kind = _event_kind()
    new: list[tuple[_Report, store.PreparedCreate]] = []
    again: list[_Report] = []
    for report in reports:
        if _remember(report.namespace, report.name):
            again.append(report)
            continue
        try:
            prepared = store.prepare_create(
                kind, report.event, namespace=report.namespace, field_manager=report.component
            )
        except ApiError as exc:
            _not_recorded(report, exc)
            continue
        new.append((report, prepared))
    if new:
        results = store.create_many([prepared for _, prepared in new])
        # A taken name: the event was recorded by another worker or before a restart.
        again += [
            report
            for (report, _), result in zip(new, results, strict=True)
            if isinstance(result, ApiError)
        ]
    for report in again:
        try:
            _count_up(kind, report)
        except ApiError as exc:
            _not_recorded(report, exc)


def _count_up(kind: Kind, report: _Report) -> None:
    now = report.event["lastTimestamp"]

    def bump(event: Obj) -> Obj:
        event["count"] = int(event.get("count") or 1) + 1
        event["lastTimestamp"] = now
        return event

    try:
        store.guaranteed_update(
            kind, report.namespace, report.name, bump, field_manager=report.component
        )
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
        # Deleted since (or never written): record it afresh.
        store.create(
            kind, clone(report.event), namespace=report.namespace, field_manager=report.component
        )


def _not_recorded(report: _Report, exc: ApiError) -> None:
    # The next report of it tries the store again.
    _forget(report.namespace, report.name)
    # A missing or terminating namespace is an expected end for an event; anything else
    # is worth a look.
    level = logging.DEBUG if exc.reason in ("NotFound", "Forbidden") else logging.WARNING
    logger.log(level, "event %s/%s not recorded: %s", report.namespace, report.name, exc.message)


def _event_kind() -> Kind:
    kind = by_kind("v1", "Event")
    assert kind is not None
    return kind


# The control loops' events are written behind them (client-go's recorder writes from a
# goroutine of its own): a loop's batch of events shares one transaction.
_writer: WriteBehind[_Report] = WriteBehind("event-writer", _write, what="events")


def flush(timeout: float = 10.0) -> bool:
    """Wait until the events this process has recorded are written (batch mode)."""
    return _writer.flush(timeout)
