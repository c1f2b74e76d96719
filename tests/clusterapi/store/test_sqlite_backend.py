"""The SQLite backend's in-process writer queue (``clusterapi.store.sqlite``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection

from clusterapi.store.sqlite import base


def wrapper(path: Path, alias: str, timeout: float = 30) -> base.DatabaseWrapper:
    settings = {
        **connection.settings_dict,
        "ENGINE": "clusterapi.store.sqlite",
        "NAME": str(path),
        "TEST": {},
        "OPTIONS": {"timeout": timeout, "transaction_mode": "IMMEDIATE"},
    }
    db = base.DatabaseWrapper(settings, alias=alias)
    db.ensure_connection()  # as atomic() does before it begins
    return db


@pytest.fixture
def database(tmp_path: Path, django_db_blocker: Any) -> Iterator[Path]:
    """A scratch database file of its own, outside the tests' database."""
    path = tmp_path / "queue.sqlite3"
    with django_db_blocker.unblock():
        setup = wrapper(path, "setup")
        with setup.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("CREATE TABLE t (n INTEGER)")
        setup.close()
        yield path


def test_a_second_writer_waits_for_the_first_and_starts_when_it_commits(
    database: Path,
) -> None:
    first = wrapper(database, "first")
    order: list[str] = []
    first._start_transaction_under_autocommit()
    with first.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1)")

    def other() -> None:
        second = wrapper(database, "second")
        with second.cursor() as cursor:
            second._start_transaction_under_autocommit()
            order.append("second began")
            cursor.execute("INSERT INTO t VALUES (2)")
        second.commit()
        second.close()

    thread = threading.Thread(target=other)
    thread.start()
    time.sleep(0.3)
    assert order == []  # still waiting for its turn
    order.append("first commits")
    first.commit()
    thread.join(5)
    assert order == ["first commits", "second began"]
    with first.cursor() as cursor:
        cursor.execute("SELECT n FROM t ORDER BY n")
        assert [n for (n,) in cursor.fetchall()] == [1, 2]
    first.close()


def test_a_rollback_or_a_closed_connection_hands_the_turn_on(database: Path) -> None:
    db = wrapper(database, "db", timeout=1)
    db._start_transaction_under_autocommit()
    db.rollback()
    db._start_transaction_under_autocommit()
    db.close()  # closed inside its transaction
    other = wrapper(database, "other", timeout=1)
    other._start_transaction_under_autocommit()
    other.commit()
    other.close()


def test_a_writer_that_waits_longer_than_the_timeout_gets_database_is_locked(
    database: Path,
) -> None:
    holder = wrapper(database, "holder")
    holder._start_transaction_under_autocommit()
    failure: list[BaseException] = []

    def other() -> None:
        waiter = wrapper(database, "waiter", timeout=0.2)
        try:
            waiter._start_transaction_under_autocommit()
        except OperationalError as exc:
            failure.append(exc)
        waiter.close()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    holder.rollback()
    holder.close()
    assert failure and "database is locked" in str(failure[0])
