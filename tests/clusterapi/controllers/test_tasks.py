"""The task layer: one reconcile per key at a time, retries of a locked key, capped countdowns.

``reconcile_task`` is called directly (as a worker thread would run it) with a stand-in
controller, and messages it sends to the broker are captured instead of sent.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.core.cache import cache

from clusterapi import controllers
from clusterapi.controllers import tasks
from clusterapi.controllers.base import Controller

NS = "team"


class Recorder:
    """A reconcile that notes how many runs of it overlap, and can be held inside."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.guard = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.runs = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, namespace: str, name: str) -> float | None:
        with self.guard:
            self.running += 1
            self.runs += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.entered.set()
        self.release.wait(10)
        time.sleep(self.hold)
        with self.guard:
            self.running -= 1
        return None


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from an empty cache (marks and locks of an earlier test would count here), and
    keep the task from touching database connections: the stand-in controller uses none."""
    cache.clear()
    monkeypatch.setattr(tasks, "close_old_connections", lambda: None)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[Any], float | None]]:
    """The reconcile messages sent to the broker: (args, countdown)."""
    messages: list[tuple[list[Any], float | None]] = []

    def apply_async(args: list[Any], countdown: float | None = None, **options: Any) -> None:
        messages.append((list(args), countdown))

    monkeypatch.setattr(tasks.reconcile_task, "apply_async", apply_async)
    return messages


def register(monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> Controller:
    controller = Controller(name="probe", kind="ConfigMap", reconcile=recorder)
    monkeypatch.setitem(controllers.BY_NAME, controller.name, controller)
    return controller


def run_task(name: str = "web") -> None:
    tasks.reconcile_task("probe", NS, name)


def test_two_concurrent_runs_of_one_key_never_overlap(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[list[Any], float | None]]
) -> None:
    recorder = Recorder()
    register(monkeypatch, recorder)
    recorder.release.clear()
    first = threading.Thread(target=run_task)
    first.start()
    assert recorder.entered.wait(5)
    # A second delivery of the same key while the first runs: it does not run, it comes back.
    run_task()
    assert recorder.runs == 1
    assert sent == [(["probe", NS, "web"], tasks.LOCK_RETRY_SECONDS)]
    recorder.release.set()
    first.join(5)
    # The retry runs once the holder is done, and sees whatever the holder missed.
    run_task()
    assert recorder.runs == 2
    assert recorder.most_at_once == 1


def test_many_concurrent_runs_of_one_key_run_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[list[Any], float | None]]
) -> None:
    recorder = Recorder(hold=0.01)
    register(monkeypatch, recorder)

    def worker() -> None:
        for _ in range(20):
            run_task()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert recorder.runs >= 1
    assert recorder.most_at_once == 1
    # Deliveries that found the key busy left retries behind, and the lock is free again.
    assert recorder.runs == 120 or sent
    assert cache.get(tasks._lock_key("probe", NS, "web")) is None


def test_runs_of_different_keys_go_side_by_side(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[list[Any], float | None]]
) -> None:
    recorder = Recorder()
    register(monkeypatch, recorder)
    recorder.release.clear()
    first = threading.Thread(target=run_task, args=("web",))
    first.start()
    assert recorder.entered.wait(5)
    other = threading.Thread(target=run_task, args=("db",))
    other.start()
    deadline = time.monotonic() + 5
    while recorder.runs < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    recorder.release.set()
    first.join(5)
    other.join(5)
    assert recorder.most_at_once == 2
    assert sent == []


def test_a_locked_key_leaves_one_retry_however_often_it_is_woken(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[list[Any], float | None]]
) -> None:
    recorder = Recorder()
    probe = register(monkeypatch, recorder)
    with tasks.key_lock("probe", NS, "web") as held:
        assert held
        run_task()
        # The retry holds the key's pending mark: wake-ups meanwhile fold into it.
        for _ in range(5):
            tasks.enqueue(probe, NS, "web")
    assert recorder.runs == 0
    assert sent == [(["probe", NS, "web"], tasks.LOCK_RETRY_SECONDS)]
    run_task()
    assert recorder.runs == 1


def test_a_lock_held_by_another_worker_is_respected_until_it_expires() -> None:
    key = tasks._lock_key("probe", NS, "web")
    cache.add(key, "another-worker", tasks.LOCK_SECONDS)
    with tasks.key_lock("probe", NS, "web") as held:
        assert not held
    assert cache.get(key) == "another-worker"
    # What expiry does for a killed holder: its lock simply goes away.
    cache.delete(key)
    with tasks.key_lock("probe", NS, "web") as held:
        assert held
    assert cache.get(key) is None


def test_the_renewer_keeps_held_locks_and_takes_back_lost_ones() -> None:
    key = tasks._lock_key("probe", NS, "web")
    with tasks.key_lock("probe", NS, "web") as held:
        assert held
        token = cache.get(key)
        # The cache lost the lock (a Redis restart): the holder's renewal takes it back.
        cache.delete(key)
        tasks._HELD.renew()
        assert cache.get(key) == token
        # Another worker took it meanwhile: renewal leaves theirs alone.
        cache.set(key, "another-worker", tasks.LOCK_SECONDS)
        tasks._HELD.renew()
        assert cache.get(key) == "another-worker"
    assert cache.get(key) == "another-worker"


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Controller:
    return register(monkeypatch, Recorder())


def test_long_countdowns_are_capped_below_the_broker_visibility_timeout(
    probe: Controller, sent: list[tuple[list[Any], float | None]]
) -> None:
    tasks.enqueue(probe, NS, "nightly", 86400.0)
    tasks.enqueue(probe, NS, "soon", 1.5)
    assert [(args[:3], countdown) for args, countdown in sent] == [
        (["probe", NS, "nightly"], tasks.MAX_DELAY_SECONDS),
        (["probe", NS, "soon"], 1.5),
    ]


def test_a_key_has_one_scheduled_look_however_often_it_asks(
    probe: Controller, sent: list[tuple[list[Any], float | None]]
) -> None:
    for delay in (5.0, 5.0, 8.0, 30.0):
        tasks.enqueue(probe, NS, "backing-off", delay)
    assert len(sent) == 1
    assert sent[0][1] == 5.0


def test_a_sooner_look_replaces_the_scheduled_one_which_then_does_nothing(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[list[Any], float | None]]
) -> None:
    recorder = Recorder()
    probe = register(monkeypatch, recorder)
    tasks.enqueue(probe, NS, "web", 30.0)
    tasks.enqueue(probe, NS, "web", 1.0)
    assert [countdown for _, countdown in sent] == [30.0, 1.0]
    (late_args, _), (soon_args, _) = sent
    tasks.reconcile_task(*late_args)  # the replaced look fires (early, as a broker may)
    assert recorder.runs == 0
    tasks.reconcile_task(*soon_args)
    assert recorder.runs == 1
    # Its mark is released: the next request schedules a look again.
    tasks.enqueue(probe, NS, "web", 2.0)
    assert len(sent) == 3


def test_a_look_long_overdue_counts_as_lost_and_is_scheduled_again(
    monkeypatch: pytest.MonkeyPatch, probe: Controller, sent: list[tuple[list[Any], float | None]]
) -> None:
    tasks.enqueue(probe, NS, "stranded", 5.0)
    # Its message went with a killed worker; the mark stays. Time passes beyond its due time.
    later = time.time() + 5.0 + tasks.OVERDUE_SECONDS + 1
    monkeypatch.setattr(tasks.time, "time", lambda: later)
    tasks.enqueue(probe, NS, "stranded", 5.0)
    assert [countdown for _, countdown in sent] == [5.0, 5.0]


def test_wakeups_of_a_pending_key_fold_into_one_message(
    probe: Controller, sent: list[tuple[list[Any], float | None]]
) -> None:
    for _ in range(3):
        tasks.enqueue(probe, NS, "web")
    tasks.enqueue(probe, NS, "web", force=True)
    assert sent == [(["probe", NS, "web"], None), (["probe", NS, "web"], None)]


def test_a_wakeup_the_broker_cannot_take_does_not_fail_the_write(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu.exceptions import OperationalError

    from clusterapi.resources import by_kind

    def unreachable(*args: Any, **options: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    settings.BERTH_CONTROLLERS_ENABLED = True
    settings.BERTH_WAKE_BATCH_SECONDS = 0
    monkeypatch.setattr(tasks.dispatch_changes_task, "apply_async", unreachable)
    kind = by_kind("v1", "ConfigMap")
    assert kind is not None
    controllers.wake(
        kind, {"metadata": {"namespace": NS, "name": "settings", "resourceVersion": "7"}}
    )


def test_a_singleton_key_on_a_worker_that_does_not_lead_comes_back(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[list[Any], float | None]]
) -> None:
    from clusterapi.controllers import leader

    recorder = Recorder()
    controller = Controller(name="probe", kind="ConfigMap", reconcile=recorder, singleton=True)
    monkeypatch.setitem(controllers.BY_NAME, controller.name, controller)
    monkeypatch.setattr(leader, "is_leader", lambda loop: False)
    run_task()
    assert recorder.runs == 0
    assert sent == [(["probe", NS, "web"], leader.RENEW_SECONDS)]


def test_the_resync_sweeps_the_scheduler(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[list[Any], float | None]]
) -> None:
    from clusterapi.scheduler import scheduler

    monkeypatch.setattr(controllers, "CONTROLLERS", (controllers.BY_NAME["scheduler"],))
    assert tasks.resync_task() == 1
    assert sent == [(["scheduler", *scheduler.SWEEP], None)]
