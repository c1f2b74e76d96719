"""The backend's ``DatabaseWrapper`` (see the package docstring)."""

from __future__ import annotations

import threading
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base

# One writer per process at a time, across all threads' connections to the database file.
_WRITER = threading.Lock()
DEFAULT_WAIT_SECONDS = 30.0


class DatabaseWrapper(base.DatabaseWrapper):
    """Takes the process's writer lock for the span of each explicit transaction.

    (The hooks overridden are Django's private ones, which django-stubs does not declare.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holds_writer = False

    def _writer_wait(self) -> float:
        # As long as SQLite's own busy timeout: the caller sees the same "database is
        # locked" after the same wait as without the queue.
        return float(self.settings_dict.get("OPTIONS", {}).get("timeout", DEFAULT_WAIT_SECONDS))

    def _start_transaction_under_autocommit(self) -> None:
        if not _WRITER.acquire(timeout=self._writer_wait()):
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
            _WRITER.release()

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
