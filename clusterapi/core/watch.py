"""The change feed: one tail of the change log per process, fanned out to watch streams.

A background thread follows ``Change`` rows in revision order. It wakes at once when this
process commits a write (``notify``) and otherwise polls every ``POLL_SECONDS``, which is how
writes from other processes (other API servers, workers, the shell) reach it. Each watch
stream subscribes with a filter on (group, resource) and gets the matching rows on an asyncio
queue in its own event loop.

A subscription starts at the feed's position when it was made (``Subscription.start``): the
watch view replays older revisions from the database up to that point, then reads the queue,
so no revision is missed or seen twice between history and live events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

from django.db import close_old_connections

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
_BATCH = 1000


@dataclass(frozen=True)
class Event:
    """One committed change, as the feed hands it to subscribers."""

    revision: int
    type: str
    group: str
    resource: str
    namespace: str
    name: str
    data: str
    previous: str


@dataclass(eq=False)
class Subscription:
    """A watch stream's place on the feed."""

    group: str
    resource: str
    loop: asyncio.AbstractEventLoop
    start: int = 0
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def close(self) -> None:
        _feed.unsubscribe(self)


class ChangeFeed:
    """The process-wide tail of the change log (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._subscribers: set[Subscription] = set()
        self._position: int | None = None
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        self._wake.set()

    def subscribe(self, group: str, resource: str) -> Subscription:
        """A new subscription; call from the event loop that will read its queue."""
        sub = Subscription(group, resource, asyncio.get_running_loop())
        with self._lock:
            if self._position is None:
                raise RuntimeError("the change feed must be started (from a thread) first")
            assert self._position is not None
            sub.start = self._position
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    @property
    def position(self) -> int:
        assert self._position is not None
        return self._position

    def start(self) -> None:
        """Start following the log (idempotent). Reads the database: call from a thread."""
        with self._lock:
            if self._thread is not None:
                return
            self._position = _latest_revision()
            self._thread = threading.Thread(target=self._run, name="berth-watch-feed", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            try:
                self._drain()
            except Exception:
                logger.exception("change feed poll failed")
                close_old_connections()

    def _drain(self) -> None:
        from clusterapi.store import sql

        while True:
            assert self._position is not None
            if not self._subscribers:
                # Nobody to hand rows to (an API process without watches, a burst of
                # creates): move past them without reading them. A subscriber that comes in
                # meanwhile starts at the old position and gets the rows the usual way.
                latest = sql.latest_change()
                with self._lock:
                    if not self._subscribers:
                        self._position = max(self._position, latest)
                        return
            rows = sql.select_changes(self._position, _BATCH)
            if not rows:
                return
            events = [Event(*row) for row in rows]
            with self._lock:
                subscribers = list(self._subscribers)
                self._position = events[-1].revision
            for sub in subscribers:
                wanted = [
                    e
                    for e in events
                    if e.resource == sub.resource
                    and e.group == sub.group
                    and e.revision > sub.start
                ]
                for event in wanted:
                    sub.loop.call_soon_threadsafe(sub.queue.put_nowait, event)
            if len(rows) < _BATCH:
                return


def _latest_revision() -> int:
    from clusterapi.store import sql

    return sql.latest_change()


_feed = ChangeFeed()


def notify() -> None:
    """Tell this process's feed that a write committed (called by the store on commit)."""
    _feed.notify()


def subscribe(group: str, resource: str) -> Subscription:
    """Subscribe from an event loop; ``start`` must have run (it touches the database)."""
    return _feed.subscribe(group, resource)


def start() -> None:
    _feed.start()


def feed() -> ChangeFeed:
    return _feed
