"""Small kinds that hot paths read whole, held in memory per process.

Priority admission reads every PriorityClass for each new pod (to find the global default);
listing them from the database was a seventh of an API create. A ``Snapshot`` keeps the
decoded objects of one kind and reads them again only when they may have changed:

* a write of the kind in this process marks it stale at once (the store calls ``changed``
  when it writes and again when the write commits), and
* a write by another process (a worker, another API server) is noticed by a cheap probe, the
  newest change-log revision of the kind (one index seek on ``change_by_kind``), taken at
  most every ``RECHECK_SECONDS``.

So another process's write is seen within ``RECHECK_SECONDS``, as upstream's admission plugins
see the cluster through informer caches. Callers must not modify what they get (it is shared).
The RBAC authorizer keeps its policy index the same way (``clusterapi.rbac.authorizer``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from clusterapi.resources.registry import Kind
from clusterapi.store import sql

RECHECK_SECONDS = 1.0

Obj = dict[str, Any]


class Snapshot:
    """The objects of one kind, as of the latest probe (module docstring)."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._objects: list[Obj] | None = None
        self._marker = -1
        self._checked_at = 0.0
        # changed() bumps it; a snapshot read before the bump is not current.
        self._generation = 0
        self._built_generation = -1

    def invalidate(self) -> None:
        self._generation += 1

    def objects(self) -> list[Obj]:
        if self._current(time.monotonic()):
            assert self._objects is not None
            return self._objects
        with self._lock:
            now = time.monotonic()
            if not self._current(now):
                generation = self._generation
                # The probe before the read: a write racing the read moves the marker, and the
                # next probe reads again.
                marker = sql.latest_change_of(self.kind.group, self.kind.plural)
                if (
                    self._objects is None
                    or marker != self._marker
                    or generation != self._built_generation
                ):
                    from clusterapi.store.objects import list_objects

                    self._objects = list_objects(self.kind).objects()
                    self._marker = marker
                self._built_generation = generation
                self._checked_at = now
            assert self._objects is not None
            return self._objects

    def _current(self, now: float) -> bool:
        return (
            self._objects is not None
            and self._built_generation == self._generation
            and now - self._checked_at < RECHECK_SECONDS
        )


_SNAPSHOTS: dict[tuple[str, str], Snapshot] = {}
_REGISTRY_LOCK = threading.Lock()


def of(kind: Kind) -> Snapshot:
    """The process's snapshot of ``kind`` (made on first use)."""
    key = (kind.group, kind.plural)
    found = _SNAPSHOTS.get(key)
    if found is None:
        with _REGISTRY_LOCK:
            found = _SNAPSHOTS.setdefault(key, Snapshot(kind))
    return found


def changed(kind: Kind) -> None:
    """A write of ``kind`` in this process: its snapshot (if any) is stale."""
    found = _SNAPSHOTS.get((kind.group, kind.plural))
    if found is not None:
        found.invalidate()


def forget_all() -> None:
    """Drop every snapshot (tests: a rolled-back test must not leave objects behind)."""
    with _REGISTRY_LOCK:
        _SNAPSHOTS.clear()
