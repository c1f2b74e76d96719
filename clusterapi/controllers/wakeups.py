"""Handing committed changes to the workers: a batch of revisions per message.

The store calls ``controllers.wake`` after every committed write. Sending a Celery message
from there cost about a third of an API create (building and publishing the message), and a
burst of writes (a ReplicaSet creating 500 pods, the scheduler binding them) sent one message
each. Instead the revision of the change joins a per-process buffer, and a flusher thread
sends what accumulated as one ``berth.dispatch_changes`` task at most every
``BERTH_WAKE_BATCH_SECONDS`` (50 ms by default). The worker reads those changes from the
change log and maps each to the controllers' keys (``tasks.dispatch_changes``).

A wake-up is a hint, never the only way to convergence: one lost with a crashed process or
an unreachable broker is made good by the periodic resync, as before. A process that exits
flushes what it holds (``atexit``), so a management command's writes are not left behind.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def send(revisions: list[int]) -> None:
    """One dispatch message for these revisions; dropped (logged) when the broker is down."""
    from kombu.exceptions import OperationalError

    from clusterapi.controllers.tasks import dispatch_changes_task

    try:
        dispatch_changes_task.apply_async(
            args=[revisions],
            ignore_result=True,
            # Celery would otherwise build a repr of the arguments for its logs.
            argsrepr=f"{len(revisions)} change(s) from {revisions[0]}",
            kwargsrepr="",
        )
    except OperationalError as exc:
        logger.warning(
            "wake-up for %d change(s) dropped, the broker is unreachable: %s", len(revisions), exc
        )


class Buffer:
    """Revisions waiting for the flusher thread (one thread per process, started lazily)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[int] = []
        self.ready = threading.Event()
        self.thread_pid = 0

    def add(self, revision: int) -> None:
        delay = settings.BERTH_WAKE_BATCH_SECONDS
        if delay <= 0:
            send([revision])
            return
        with self.lock:
            self.pending.append(revision)
            if self.thread_pid != os.getpid():
                # By process id: a thread started before a fork does not run in the child.
                self.thread_pid = os.getpid()
                threading.Thread(target=self._run, name="berth-wakeups", daemon=True).start()
        self.ready.set()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
        if batch:
            send(batch)

    def _run(self) -> None:
        while True:
            self.ready.wait()
            # Let the rest of a burst arrive, then send it as one message.
            time.sleep(settings.BERTH_WAKE_BATCH_SECONDS)
            self.ready.clear()
            try:
                self.flush()
            except Exception:
                logger.exception("could not hand changes to the workers")


BUFFER = Buffer()
atexit.register(BUFFER.flush)
