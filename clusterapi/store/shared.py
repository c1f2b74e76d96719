"""Lists whose decoded objects are kept between calls: a controller's informer cache.

A controller that reconciles often lists the same objects again and again: the ReplicaSet
controller reads every pod of its namespace on each reconcile, and during the rollout of a
Deployment of 1,000 replicas it reconciled hundreds of times, decoding every pod each time
(a quarter of the worker's CPU). ``list_shared`` keeps, per kind and namespace, each object
decoded at its revision; a list reads the names and revisions of the rows and the JSON of
only the rows written since the last list, so an unchanged object is never decoded twice.

Why it is exact: writers take revisions in commit order (SQLite has one writer; PostgreSQL's
revision row stays locked until commit), so a row written after a list carries a revision
above every revision that list saw, and ``revision > since`` finds every change. Deletions
are rows that are no longer there.

Unlike ``snapshots`` (whole small kinds, re-read when they may have changed), a shared list
is exact at every call. The objects are **shared** with every other caller of the same list:
they must not be modified (copy one before changing it; writes go through the store, which
reads its own). The cache holds at most ``MAX_OBJECTS`` objects; the namespaces listed least
recently are dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from clusterapi.resources.registry import Kind
from clusterapi.store import sql

Obj = dict[str, Any]
MAX_OBJECTS = 20_000


@dataclass
class _Scope:
    since: int = 0
    # name -> (revision, uid, object)
    objects: dict[str, tuple[int, str, Obj]] = field(default_factory=dict)


_scopes: OrderedDict[tuple[str, str, str], _Scope] = OrderedDict()
_lock = threading.Lock()


def list_shared(kind: Kind, namespace: str) -> list[Obj]:
    """The objects of a namespaced kind in one namespace, in name order; shared, read-only
    (module docstring)."""
    import orjson

    key = (kind.group, kind.plural, namespace)
    with _lock:
        scope = _scopes.get(key) or _Scope()
    rows = sql.select_changed(kind.group, kind.plural, namespace, scope.since)
    objects: dict[str, tuple[int, str, Obj]] = {}
    since = scope.since
    for name, uid, revision, data in rows:
        cached = scope.objects.get(name)
        if data is None:
            if cached is not None and cached[0] == revision and cached[1] == uid:
                objects[name] = cached
                continue
            # Not expected (see the docstring), but never worth a wrong answer: a database
            # rolled back under us (tests) reuses revisions, so the uid is checked too.
            data = sql.select_data(kind.group, kind.plural, namespace, name)
            if data is None:
                continue
        objects[name] = (revision, uid, orjson.loads(data))
        since = max(since, revision)
    with _lock:
        _scopes[key] = _Scope(since, objects)
        _scopes.move_to_end(key)
        total = sum(len(s.objects) for s in _scopes.values())
        while total > MAX_OBJECTS and len(_scopes) > 1:
            _, dropped = _scopes.popitem(last=False)
            total -= len(dropped.objects)
    return [obj for _, _, obj in objects.values()]


def clear() -> None:
    """Forget every kept list (tests that reset the database)."""
    with _lock:
        _scopes.clear()
