"""The backend's ``DatabaseWrapper`` and the queues it waits in (see the package docstring)."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import OperationalError
from django.db.backends.sqlite3 import base

logger = logging.getLogger(__name__)

# One writer per process at a time, across all threads' connections to the database file.
_WRITER = threading.Lock()
# Threads of this process waiting for _WRITER (a Lock cannot say), for others_waiting().
_waiting = 0
_waiting_guard = threading.Lock()
DEFAULT_WAIT_SECONDS = 30.0
# How often a writer waiting for another process looks again: flock cannot wait with a time
# limit, and a wait without one would turn a stuck holder into a hang instead of an error.
_POLL_FIRST_SECONDS = 0.0002
_POLL_MAX_SECONDS = 0.001


class ProcessQueue:
    """The writers of every process using one database file, taking turns (module docstring).

    One per process and database path. The turnstile and writer descriptors are used only by
    the thread holding ``_WRITER``; ``others_waiting`` may be asked by any thread and probes
    the turnstile through a descriptor of its own (flock locks belong to an open file, so a
    shared one would let the probe's unlock release a waiting writer's turnstile). All are
    opened again after a fork: a child sharing its parent's open files would share its locks.
    """

    def __init__(self, database: str) -> None:
        self.paths = (f"{database}-turnstile.lock", f"{database}-writer.lock")
        self.pid = 0
        self.descriptors: tuple[int, int, int] = (-1, -1, -1)
        self.guard = threading.Lock()

    def _open(self) -> tuple[int, int, int]:
        with self.guard:
            if self.pid != os.getpid():
                turnstile, writer = self.paths
                self.descriptors = (_open(turnstile), _open(writer), _open(turnstile))
                self.pid = os.getpid()
            return self.descriptors

    def acquire(self, timeout: float) -> bool:
        turnstile, writer, _ = self._open()
        deadline = time.monotonic() + timeout
        if not _lock(turnstile, deadline):
            return False
        try:
            return _lock(writer, deadline)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)

    def release(self) -> None:
        fcntl.flock(self.descriptors[1], fcntl.LOCK_UN)

    def others_waiting(self) -> bool:
        """Whether a writer is waiting for its turn: it holds the turnstile."""
        probe = self._open()[2]
        with self.guard:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False


def _open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _lock(descriptor: int, deadline: float) -> bool:
    pause = _POLL_FIRST_SECONDS
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_SECONDS)


def take_turn(queue: ProcessQueue | None, wait: float) -> bool:
    """Wait (at most ``wait`` seconds) for this process's, then the database's, write turn."""
    global _waiting
    started = time.monotonic()
    with _waiting_guard:
        _waiting += 1
    try:
        acquired = _WRITER.acquire(timeout=wait)
    finally:
        with _waiting_guard:
            _waiting -= 1
    if not acquired:
        return False
    if queue is not None and not queue.acquire(max(0.0, wait - (time.monotonic() - started))):
        _WRITER.release()
        return False
    return True


def end_turn(queue: ProcessQueue | None) -> None:
    if queue is not None:
        queue.release()
    _WRITER.release()


# A commit checkpoints only when the WAL is past this many pages (SQLite's default is 1,000):
# the backstop for a process whose checkpointer is not keeping up.
WAL_AUTOCHECKPOINT_PAGES = 10_000
CHECKPOINT_INTERVAL_SECONDS = 0.2
# How long the checkpointer waits for a write turn before it tries again next round.
CHECKPOINT_TURN_WAIT_SECONDS = 1.0
# Past this many pages the checkpointer makes sure the WAL starts over (``_checkpoint``).
WAL_RESTART_PAGES = 1_000


class Checkpointer:
    """Copies the WAL into the database file from a thread of its own (module docstring).

    A PASSIVE checkpoint neither takes the write lock nor waits for readers: it copies what
    it can, and the next writer starts the WAL over once everything is copied. One per
    process and database, started with the process's first connection; a fork starts its own.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.pid = 0
        self.guard = threading.Lock()

    def ensure_running(self) -> None:
        with self.guard:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True).start()

    def _run(self) -> None:
        connection = sqlite3.connect(self.database, timeout=0, isolation_level=None)
        queue = process_queue(self.database)
        try:
            while True:
                time.sleep(CHECKPOINT_INTERVAL_SECONDS)
                try:
                    self._checkpoint(connection, queue)
                except sqlite3.Error as exc:  # busy (another checkpoint runs): next round
                    logger.debug("WAL checkpoint of %s skipped: %s", self.database, exc)
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection, queue: ProcessQueue) -> None:
        # Beside the writers: the bulk of the frames. But SQLite starts the WAL over only
        # when a write transaction begins with every frame copied, which under steady writes
        # never happens by chance. So once the WAL is long, the rest (the few frames written
        # since) is copied in a write turn of its own, and the next writer starts it over.
        _busy, frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < WAL_RESTART_PAGES or not take_turn(queue, CHECKPOINT_TURN_WAIT_SECONDS):
            return
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            end_turn(queue)


# One of each per database file in a process (a forked child reopens what it needs itself).
_QUEUES: dict[str, ProcessQueue] = {}
_CHECKPOINTERS: dict[str, Checkpointer] = {}
_REGISTRY_GUARD = threading.Lock()
_T = TypeVar("_T")


def _one_per_database(registry: dict[str, _T], database: str, make: Callable[[str], _T]) -> _T:
    with _REGISTRY_GUARD:
        found = registry.get(database)
        if found is None:
            found = registry[database] = make(database)
        return found


def process_queue(database: str) -> ProcessQueue:
    return _one_per_database(_QUEUES, database, ProcessQueue)


def checkpointer(database: str) -> Checkpointer:
    return _one_per_database(_CHECKPOINTERS, database, Checkpointer)


class DatabaseWrapper(base.DatabaseWrapper):
    """Takes the writer's turn for the span of each explicit transaction.

    (The hooks overridden are Django's private ones, which django-stubs does not declare.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holds_writer = False
        self._queue: ProcessQueue | None = None
        self._checkpointer: Checkpointer | None = None
        if not self.is_in_memory_db():
            path = os.path.abspath(str(self.settings_dict["NAME"]))
            self._queue = process_queue(path)
            self._checkpointer = checkpointer(path)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if self._checkpointer is not None:
            # Checkpoints run beside the writers, not in the commit that crosses the limit:
            # inside the write turn they were a third of a create's time holding it.
            connection.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            self._checkpointer.ensure_running()
        return connection

    def _writer_wait(self) -> float:
        # As long as SQLite's own busy timeout: the caller sees the same "database is
        # locked" after the same wait as without the queue.
        return float(self.settings_dict.get("OPTIONS", {}).get("timeout", DEFAULT_WAIT_SECONDS))

    def others_waiting(self) -> bool:
        """Whether another writer, of this process or another, waits for the turn this
        connection holds: a writer batching many writes in one transaction ends it early."""
        return _waiting > 0 or (self._queue is not None and self._queue.others_waiting())

    def _start_transaction_under_autocommit(self) -> None:
        if not take_turn(self._queue, self._writer_wait()):
            raise OperationalError("database is locked")
        self._holds_writer = True
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]
        except BaseException:
            self._release_writer()
            raise

    def _release_writer(self) -> None:
        if self._holds_writer:
            self._holds_writer = False
            end_turn(self._queue)

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        finally:
            self._release_writer()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            self._release_writer()

    def close(self) -> None:
        try:
            super().close()
        finally:
            # A connection closed inside a transaction (an error, a test teardown) has
            # rolled back; its turn is over.
            self._release_writer()
