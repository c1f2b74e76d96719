"""Event recording: one growing Event per repeated report, decided from memory, judged
by the store."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import events
from tests.clusterapi.controllers.conftest import NS, POD, kind

pytestmark = pytest.mark.django_db

EVENT = kind("v1", "Event")
Obj = dict[str, Any]


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "_recorded", type(events._recorded)())


@pytest.fixture
def pod(ns: str) -> Obj:
    body = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    return store.create(POD, body, namespace=NS).obj


def all_events() -> list[Obj]:
    return store.list_objects(EVENT, NS).objects()


def report(pod: Obj, message: str = "0/1 nodes are available.") -> None:
    events.record(pod, events.WARNING, "FailedScheduling", message, component="scheduler")


def test_a_repeated_report_counts_one_event_up(pod: Obj) -> None:
    report(pod)
    report(pod)
    report(pod, "another message")
    counted = sorted((e["message"], e["count"]) for e in all_events())
    assert counted == [("0/1 nodes are available.", 2), ("another message", 1)]
    [event] = [e for e in all_events() if e["count"] == 2]
    assert event["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert (event["type"], event["reason"], event["source"]) == (
        "Warning",
        "FailedScheduling",
        {"component": "scheduler"},
    )


def test_an_event_recorded_before_a_restart_is_counted_up(
    pod: Obj, monkeypatch: pytest.MonkeyPatch
) -> None:
    report(pod)
    # A new worker process remembers nothing: its create finds the event and counts it.
    monkeypatch.setattr(events, "_recorded", type(events._recorded)())
    report(pod)
    [event] = all_events()
    assert event["count"] == 2


def test_a_remembered_event_that_was_deleted_is_created_again(pod: Obj) -> None:
    report(pod)
    [event] = all_events()
    store.delete(EVENT, NS, event["metadata"]["name"])
    report(pod)
    [again] = all_events()
    assert again["count"] == 1
    assert again["metadata"]["uid"] != event["metadata"]["uid"]


def test_memory_keeps_the_newest_entries_only(pod: Obj, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "REMEMBERED", 2)
    for n in range(3):
        report(pod, f"message {n}")
    assert len(events._recorded) == 2
    # The forgotten one is still counted up (through the store).
    report(pod, "message 0")
    assert sorted(e["count"] for e in all_events()) == [1, 1, 2]
