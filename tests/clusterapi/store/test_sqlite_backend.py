"""The SQLite backend's in-process writer queue (``clusterapi.store.sqlite``)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
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


# --- between processes ----------------------------------------------------------------------


def _hog(path: str, turns: int, hold: float, log: Any) -> None:
    """Take the writer's turn ``turns`` times, holding each for ``hold`` seconds and asking
    again at once, as a control loop committing a batch in short transactions does."""
    queue = base.process_queue(path)
    for turn in range(turns):
        assert queue.acquire(10)
        log.value = turn + 1
        time.sleep(hold)
        queue.release()


def test_a_writer_of_another_process_gets_the_next_turn_from_one_that_asks_again_at_once(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("fork")
    path = str(tmp_path / "fair.sqlite3")
    turns = context.Value("i", 0)
    hog = context.Process(target=_hog, args=(path, 200, 0.005, turns))
    hog.start()
    try:
        wait_for_value(turns, 1)
        queue = base.process_queue(path)
        assert queue.acquire(10)
        taken_at = turns.value
        queue.release()
    finally:
        hog.join(20)
    assert hog.exitcode == 0
    # Without the turnstile the hog, asking again within microseconds, would keep the lock
    # for most or all of its 200 turns before a polling waiter caught a free moment.
    assert taken_at <= 3


def test_a_killed_process_leaves_the_writer_lock_free(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    path = str(tmp_path / "killed.sqlite3")
    turns = context.Value("i", 0)
    holder = context.Process(target=_hog, args=(path, 1, 60.0, turns))
    holder.start()
    wait_for_value(turns, 1)
    queue = base.process_queue(path)
    assert not queue.acquire(0.1)  # held by the other process
    holder.kill()
    holder.join(5)
    assert queue.acquire(5)
    queue.release()


def test_writers_of_two_processes_never_hold_the_database_at_once(database: Path) -> None:
    """Through the backend itself: both processes write to one file in many transactions,
    with no "database is locked" and nothing lost."""
    path = database
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_insert_many, args=(path, "child", 100))
    child.start()
    _insert_many(path, "parent", 100)
    child.join(30)
    assert child.exitcode == 0
    check = wrapper(path, "check")
    with check.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone() == (200,)
    check.close()


def _insert_many(path: Path, alias: str, count: int) -> None:
    db = wrapper(path, alias, timeout=10)
    for n in range(count):
        db._start_transaction_under_autocommit()
        with db.cursor() as cursor:
            cursor.execute("INSERT INTO t VALUES (%s)", [n])
        db.commit()
    db.close()


def wait_for_value(value: Any, at_least: int) -> None:
    wait_until(lambda: value.value >= at_least, "the other process did not start")


def wait_until(condition: Callable[[], bool], failure: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def test_a_writer_sees_when_another_thread_or_process_waits_for_its_turn(database: Path) -> None:
    holder = wrapper(database, "holder")
    holder._start_transaction_under_autocommit()
    assert not holder.others_waiting()

    def wait_in_thread() -> None:
        waiter = wrapper(database, "waiter", timeout=5)
        waiter._start_transaction_under_autocommit()
        waiter.rollback()
        waiter.close()

    thread = threading.Thread(target=wait_in_thread)
    thread.start()
    wait_until(holder.others_waiting, "the waiting thread was not seen")
    holder.commit()
    thread.join(5)

    holder._start_transaction_under_autocommit()
    context = multiprocessing.get_context("fork")
    turns = context.Value("i", 0)
    other = context.Process(target=_hog, args=(str(database), 1, 0.0, turns))
    other.start()
    wait_until(holder.others_waiting, "the waiting process was not seen")
    holder.commit()
    other.join(10)
    assert other.exitcode == 0 and turns.value == 1
    assert not holder.others_waiting()
    holder.close()


def write_rows(db: base.DatabaseWrapper, count: int) -> None:
    for _ in range(count):
        db._start_transaction_under_autocommit()
        with db.cursor() as cursor:
            cursor.execute("INSERT INTO t VALUES (?)", (1,))
        db.commit()


def test_commits_leave_checkpoints_to_the_checkpointer(database: Path) -> None:
    db = wrapper(database, "db")
    with db.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == base.WAL_AUTOCHECKPOINT_PAGES
    db.close()


def test_the_checkpointer_starts_a_long_wal_over_while_writers_go_on(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "WAL_AUTOCHECKPOINT_PAGES", 4_000)
    monkeypatch.setattr(base, "WAL_RESTART_PAGES", 40)
    monkeypatch.setattr(base, "CHECKPOINT_INTERVAL_SECONDS", 0.02)
    db = wrapper(database, "db")
    # Steady writes: the WAL starts over only when a transaction begins with every frame
    # copied, which a checkpoint beside them never brings about by itself; the commits
    # would then checkpoint it themselves at WAL_AUTOCHECKPOINT_PAGES. The file keeps the
    # length of the longest WAL it held.
    write_rows(db, 6_000)
    db.close()
    page_size = 4096
    longest = Path(f"{database}-wal").stat().st_size // page_size
    assert longest < 2_000


def test_the_checkpointer_copies_the_last_frames_only_in_a_write_turn(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "WAL_RESTART_PAGES", 1)
    holder = wrapper(database, "holder")
    write_rows(holder, 5)
    holder._start_transaction_under_autocommit()  # holds the turn
    connection = sqlite3.connect(database, timeout=0, isolation_level=None, check_same_thread=False)
    done = threading.Event()

    def checkpoint() -> None:
        base.Checkpointer._checkpoint(connection, base.process_queue(str(database)))
        done.set()

    thread = threading.Thread(target=checkpoint)
    thread.start()
    assert not done.wait(0.1)  # waits for the writer's turn
    holder.commit()
    assert done.wait(5)
    thread.join(5)
    connection.close()
    holder.close()
