"""Group commit (``store.group``): concurrent writers share one write, each with its own
answer. The store's own use (creates outside a transaction) is covered end to end by the
live concurrency tests (16 clients creating in parallel, SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from clusterapi.store.group import GroupCommit


def joined(group: GroupCommit[int, int], members: int) -> None:
    """Wait until ``members`` writers wait in the open group."""
    deadline = time.monotonic() + 10
    while group._open is None or len(group._open.items) < members:
        assert time.monotonic() < deadline, "the writers did not join"
        time.sleep(0.005)


class Gated:
    """A write that holds its first call until released, recording every group."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.writing = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.groups.append(list(items))
        if len(self.groups) == 1:
            self.writing.set()
            assert self.release.wait(10)
        return [item * 10 for item in items]


def test_a_writer_alone_writes_a_group_of_one() -> None:
    write = Gated()
    write.release.set()
    assert GroupCommit(write).submit(4) == 40
    assert write.groups == [[4]]


def test_writers_arriving_during_a_write_share_the_next_one_and_each_gets_its_answer() -> None:
    write = Gated()
    group = GroupCommit(write)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(group.submit, 0)
        assert write.writing.wait(10)
        later = [pool.submit(group.submit, n) for n in range(1, 8)]
        joined(group, 7)  # before the first write ends
        write.release.set()
        assert first.result(10) == 0
        assert sorted(f.result(10) for f in later) == [10, 20, 30, 40, 50, 60, 70]
    assert write.groups[0] == [0]
    assert sorted(write.groups[1]) == list(range(1, 8))
    assert len(write.groups) == 2


def test_a_failed_write_fails_every_member_of_its_group_and_not_the_next() -> None:
    calls: list[list[int]] = []
    writing = threading.Event()
    release = threading.Event()

    def write(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            writing.set()
            assert release.wait(10)
            return [0]
        if len(calls) == 2:
            raise RuntimeError("database gone")
        return items

    group = GroupCommit(write)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(group.submit, 0)
        assert writing.wait(10)
        failing = [pool.submit(group.submit, n) for n in (1, 2, 3)]
        joined(group, 3)
        release.set()
        assert first.result(10) == 0
        for future in failing:
            with pytest.raises(RuntimeError, match="database gone"):
                future.result(10)
    assert group.submit(5) == 5
