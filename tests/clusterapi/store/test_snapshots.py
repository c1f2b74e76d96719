"""Snapshots of small kinds (``clusterapi.store.snapshots``): fresh after this process's
writes at once, after other processes' writes within the recheck interval."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.resources import KINDS
from clusterapi.store import snapshots

PRIORITY_CLASS = next(k for k in KINDS if k.kind == "PriorityClass")

pytestmark = pytest.mark.django_db


def names(snapshot: snapshots.Snapshot) -> list[str]:
    return [o["metadata"]["name"] for o in snapshot.objects()]


def test_reads_are_served_from_memory_until_the_kind_changes(
    django_assert_num_queries: Any,
) -> None:
    snapshot = snapshots.Snapshot(PRIORITY_CLASS)
    store.create(PRIORITY_CLASS, {"metadata": {"name": "high"}, "value": 1000})
    assert names(snapshot) == ["high"]
    with django_assert_num_queries(0):
        assert names(snapshot) == ["high"]


def test_a_write_in_this_process_is_seen_at_once() -> None:
    snapshot = snapshots.of(PRIORITY_CLASS)
    before = names(snapshot)
    store.create(PRIORITY_CLASS, {"metadata": {"name": "urgent"}, "value": 5000})
    assert names(snapshot) == sorted([*before, "urgent"])


def test_another_process_write_is_seen_at_the_next_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = snapshots.Snapshot(PRIORITY_CLASS)
    assert names(snapshot) == []
    # Another process's write: this process's hook never runs.
    monkeypatch.setattr(snapshots, "changed", lambda kind: None)
    store.create(PRIORITY_CLASS, {"metadata": {"name": "elsewhere"}, "value": 1})
    assert names(snapshot) == []  # within the recheck interval
    monkeypatch.setattr(snapshots, "RECHECK_SECONDS", 0.0)
    assert names(snapshot) == ["elsewhere"]
