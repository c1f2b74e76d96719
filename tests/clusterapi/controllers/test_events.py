"""Event recording: one growing Event per repeated report, decided from memory, judged
by the store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

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


# --- batch mode (the workers' default) ------------------------------------------------------


@pytest.fixture
def batch_mode(settings: SettingsWrapper) -> Iterator[None]:
    settings.BERTH_EVENTS_MODE = "batch"
    yield
    assert events.flush()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("batch_mode")
def test_batch_mode_writes_the_events_after_the_caller_goes_on(pod: Obj) -> None:
    for n in range(20):
        report(pod, f"message {n}")
    report(pod, "message 3")  # the same event again: counted up, not created twice
    assert events.flush()
    counted = {e["message"]: e["count"] for e in all_events()}
    assert counted == {f"message {n}": 2 if n == 3 else 1 for n in range(20)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("batch_mode")
def test_events_reported_while_a_batch_is_written_share_the_next_transaction(
    pod: Obj, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    writing = threading.Event()
    go_on = threading.Event()
    create_many = store.create_many

    def slow_first_batch(prepared: list[store.PreparedCreate]) -> list[Any]:
        batches.append(len(prepared))
        if len(batches) == 1:
            writing.set()
            assert go_on.wait(10)
        return create_many(prepared)

    monkeypatch.setattr(store, "create_many", slow_first_batch)
    report(pod, "first")
    assert writing.wait(10)
    for n in range(30):
        report(pod, f"later {n}")
    go_on.set()
    assert events.flush()
    assert batches == [1, 30]
    assert len(all_events()) == 31


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("batch_mode")
def test_an_event_that_cannot_be_written_is_dropped_and_the_rest_of_its_batch_written(
    pod: Obj, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = {**pod, "metadata": {**pod["metadata"], "namespace": "gone"}}
    with caplog.at_level(logging.DEBUG, logger="clusterapi.controllers.events"):
        report(elsewhere)
        report(pod)
        assert events.flush()
    assert [e["involvedObject"]["name"] for e in all_events()] == ["web"]
    assert 'namespaces "gone" not found' in caplog.text
    # Not remembered: a later report tries the store again.
    assert [namespace for namespace, _ in events._recorded] == [NS]
