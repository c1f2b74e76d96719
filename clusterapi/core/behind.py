"""Writing behind: records handed to a thread of their own and written in batches.

The audit log (``--audit-log-mode=batch`` upstream) and the control loops' Events (client-go's
event recorder writes from a goroutine of its own) are records whose writer need not wait for
them. ``WriteBehind`` takes them from any thread and hands whatever has queued up, at most
``max_batch`` at a time, to one ``write`` call, which commits them together: under load many
records share one turn at the store's write lock and one commit; when idle, a record is
written as soon as it comes.

A full buffer makes ``put`` wait for room rather than lose records. Records still queued when
the process is killed outright are lost; a normal exit writes them (``atexit``). ``flush``
waits until everything handed over before it is written. The thread is started by the first
``put`` of each process, so an object made at import time serves forked children too (a
child has its parent's objects but not its threads).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WriteBehind(Generic[T]):
    """A queue of records and the thread that writes them in batches (module docstring)."""

    def __init__(
        self,
        name: str,
        write: Callable[[list[T]], None],
        *,
        what: str = "records",
        buffer: int = 10_000,
        max_batch: int = 500,
    ) -> None:
        self.name = name  # the thread's
        self.write = write
        self.what = what  # for the log: "audit events"
        self.buffer = buffer
        self.max_batch = max_batch
        self._queue: queue.Queue[T | threading.Event] | None = None
        self._pid = 0
        self._guard = threading.Lock()

    def put(self, record: T) -> None:
        self._started().put(record)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record handed over so far is written; False on timeout."""
        if self._queue is None or self._pid != os.getpid():
            return True  # nothing was handed over in this process
        written = threading.Event()
        self._queue.put(written)
        return written.wait(timeout)

    def _started(self) -> queue.Queue[T | threading.Event]:
        if self._queue is None or self._pid != os.getpid():
            with self._guard:
                if self._queue is None or self._pid != os.getpid():
                    self._queue = queue.Queue(maxsize=self.buffer)
                    self._pid = os.getpid()
                    threading.Thread(
                        target=self._run, args=(self._queue,), name=self.name, daemon=True
                    ).start()
                    atexit.register(self.flush)
        return self._queue

    def _run(self, records: queue.Queue[T | threading.Event]) -> None:
        while True:
            batch = [records.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < self.max_batch:
                    batch.append(records.get_nowait())
            items = [item for item in batch if not isinstance(item, threading.Event)]
            if items:
                # The thread's own database connection: dropped if the server closed it or
                # it outlived its age, and after a failed write, so the next batch starts on
                # a fresh one.
                close_old_connections()
                try:
                    self.write(items)
                except Exception:
                    connection.close()
                    # The writers of these records were told nothing could fail them; the
                    # log says what was lost.
                    logger.exception("could not write %d %s", len(items), self.what)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
