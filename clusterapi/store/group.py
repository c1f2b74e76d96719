"""Group commit: the writes of concurrent requests share one transaction.

A process's writers take turns at the store's write lock (SQLite's file, PostgreSQL's
revision row), and a writer holding it needs the interpreter lock for each statement it runs:
with the API's threads busy parsing and validating other requests, each statement can wait
milliseconds for it, and the turn is held all that time while the other writers queue. So
instead of each thread taking its own turn, the first writer to arrive leads a *group*: it
waits for the group before it to be written, closes its own, and writes everything the group
collected meanwhile in one transaction, while the others wait for the outcome instead of the
lock. Under load a turn then serves several requests, and costs one BEGIN and one COMMIT;
alone, a writer leads a group of one, as if there were no grouping.

Every member gets its own answer (``write`` returns one per item, in order); an error
raised by the transaction itself (the database gone away) fails the whole group, and every
member raises it. Only callers outside a transaction of their own may join: a write inside
one belongs to that transaction (``objects`` checks).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Group(Generic[T, R]):
    def __init__(self) -> None:
        self.items: list[T] = []
        self.results: list[R] = []
        self.error: BaseException | None = None
        self.done = threading.Event()


class GroupCommit(Generic[T, R]):
    """Writes items of concurrent callers in groups, one ``write`` call (one transaction)
    per group (module docstring)."""

    def __init__(self, write: Callable[[list[T]], list[R]]) -> None:
        self.write = write
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._guard = threading.Lock()  # guards _open
        self._writing = threading.Lock()  # held by the leader writing a group
        self._open: _Group[T, R] | None = None

    def submit(self, item: T) -> R:
        """Write ``item`` with whatever other threads submit meanwhile; its own result."""
        if self._pid != os.getpid():
            # A forked child has its parent's locks in whatever state its threads left them.
            self._reset()
        with self._guard:
            group = self._open
            leader = group is None
            if group is None:
                group = self._open = _Group()
            index = len(group.items)
            group.items.append(item)
        if not leader:
            group.done.wait()
        else:
            self._lead(group)
        if group.error is not None:
            raise group.error
        return group.results[index]

    def _lead(self, group: _Group[T, R]) -> None:
        # Members keep joining while the group before this one is written.
        with self._writing:
            with self._guard:
                self._open = None
            try:
                group.results = self.write(group.items)
            except BaseException as exc:
                group.error = exc
            finally:
                group.done.set()
