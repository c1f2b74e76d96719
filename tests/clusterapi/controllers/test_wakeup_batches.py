"""Committed changes reach the workers in batches, and the worker maps each one to keys."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import tasks, wakeups
from clusterapi.resources import registered as kind

pytestmark = pytest.mark.django_db


CONFIGMAP = kind("v1", "ConfigMap")
NAMESPACE = kind("v1", "Namespace")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    messages: list[list[int]] = []
    monkeypatch.setattr(
        tasks.dispatch_changes_task, "apply_async", lambda args, **_: messages.append(args[0])
    )
    return messages


def test_a_burst_of_changes_from_many_threads_is_one_message(
    settings: Any, sent: list[list[int]]
) -> None:
    settings.BERTH_WAKE_BATCH_SECONDS = 0.2
    buffer = wakeups.Buffer()

    def add_fifty(start: int) -> None:
        for i in range(50):
            buffer.add(start + i)

    threads = [threading.Thread(target=add_fifty, args=(start,)) for start in range(0, 400, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(sent) == 1
    assert sorted(sent[0]) == sorted(s + i for s in range(0, 400, 100) for i in range(50))


def test_flush_sends_what_is_left_and_nothing_twice(settings: Any, sent: list[list[int]]) -> None:
    settings.BERTH_WAKE_BATCH_SECONDS = 60  # the flusher thread would wait a minute
    buffer = wakeups.Buffer()
    buffer.add(5)
    buffer.add(6)
    buffer.flush()
    buffer.flush()
    assert sent == [[5, 6]]


def test_the_worker_maps_changes_read_from_the_change_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store.create(NAMESPACE, {"metadata": {"name": "team"}})
    created = store.create(CONFIGMAP, {"metadata": {"name": "a"}}, namespace="team").obj
    deleted = store.delete(CONFIGMAP, "team", "a").obj
    seen: list[tuple[str, str, str]] = []

    def dispatch(kind_name: str, obj: dict[str, Any]) -> int:
        seen.append((kind_name, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))
        return 1

    monkeypatch.setattr("clusterapi.controllers.dispatch", dispatch)
    revisions = [
        int(deleted["metadata"]["resourceVersion"]),
        int(created["metadata"]["resourceVersion"]),
        10**9,  # compacted away (or never written): skipped
    ]
    assert tasks.dispatch_changes(revisions) == 2
    assert seen == [
        ("ConfigMap", "a", created["metadata"]["resourceVersion"]),
        ("ConfigMap", "a", deleted["metadata"]["resourceVersion"]),
    ]
