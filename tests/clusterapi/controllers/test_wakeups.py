"""The event path: committed writes alone drive the workload loops to convergence.

Celery is replaced by an in-test queue (the dispatch task runs at once and ``tasks.enqueue``
is captured), so these tests show
that each controller's ``watches`` wake the right keys: a ReplicaSet's pods wake it, its
status wakes its Deployment, deletions wake the garbage collector. Only the loops of this
module's concern run; other controllers' wake-ups are dropped. Timed re-runs (a countdown)
are dropped too: nothing here waits for a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clusterapi.controllers import tasks
from clusterapi.controllers.base import Controller
from tests.clusterapi.controllers.conftest import (
    DEPLOYMENT,
    NS,
    RS,
    Clock,
    all_pods,
    finish_terminating,
    get,
    make_all_ready,
    rollout_complete,
    update,
)
from tests.clusterapi.controllers.conftest import deployment as make_deployment

pytestmark = pytest.mark.django_db

LOOPS = {"replicaset", "replicationcontroller", "deployment", "garbagecollector"}
Run = Callable[[Callable[[], Any]], None]


@pytest.fixture
def run(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> Iterator[Run]:
    """``run(action)``: do ``action``, then work the queue its writes fill until it is empty."""
    settings.BERTH_CONTROLLERS_ENABLED = True
    queue: deque[tuple[Controller, str, str]] = deque()

    def enqueue(
        controller: Controller,
        namespace: str,
        name: str,
        delay: float = 0.0,
        *,
        force: bool = False,
    ) -> None:
        key = (controller, namespace, name)
        if controller.name in LOOPS and delay <= 0 and key not in queue:
            queue.append(key)

    monkeypatch.setattr(tasks, "enqueue", enqueue)

    settings.BERTH_WAKE_BATCH_SECONDS = 0  # each change is sent at once, not batched

    def dispatch_now(args: list[Any], **options: Any) -> None:
        # What the dispatch task does on a worker: map the changes to keys, enqueue them.
        (revisions,) = args
        tasks.dispatch_changes(revisions)

    monkeypatch.setattr(tasks.dispatch_changes_task, "apply_async", dispatch_now)

    def work(action: Callable[[], Any]) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            action()
        for _ in range(2000):
            if not queue:
                return
            controller, namespace, name = queue.popleft()
            with django_capture_on_commit_callbacks(execute=True):
                again = controller.reconcile(namespace, name)
            if again is not None:
                enqueue(controller, namespace, name, again)
        raise AssertionError("the loops did not settle")

    yield work


def test_a_deployment_rolls_out_on_wake_ups_alone(ns: str, clock: Clock, run: Run) -> None:
    run(lambda: make_deployment("web", 3))
    assert len(all_pods()) == 3
    run(lambda: make_all_ready(all_pods(), clock.stamp()))
    assert rollout_complete("web")

    run(
        lambda: update(
            DEPLOYMENT,
            "web",
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="nginx:1.26"),
        )
    )
    for _ in range(10):
        if rollout_complete("web"):
            break
        run(lambda: make_all_ready(all_pods(), clock.stamp()))
        run(finish_terminating)
    assert rollout_complete("web")
    images = {p["spec"]["containers"][0]["image"] for p in all_pods()}
    assert images == {"nginx:1.26"}


def test_deleting_a_deployment_collects_its_replicasets_and_pods(
    ns: str, clock: Clock, run: Run
) -> None:
    from clusterapi import store

    run(lambda: make_deployment("web", 2))
    run(lambda: store.delete(DEPLOYMENT, NS, "web"))
    assert store.list_objects(RS, NS).objects() == []
    assert all_pods() == []


def test_foreground_deletion_on_wake_ups_alone(ns: str, clock: Clock, run: Run) -> None:
    from clusterapi import store

    run(lambda: make_deployment("web", 2))
    run(lambda: make_all_ready(all_pods(), clock.stamp()))
    run(lambda: store.delete(DEPLOYMENT, NS, "web", propagation="Foreground"))
    # Bound pods are terminating on their node; everything above them waits.
    assert get(DEPLOYMENT, "web")["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert all(p["metadata"].get("deletionTimestamp") for p in all_pods())
    run(finish_terminating)
    assert store.list_objects(DEPLOYMENT, NS).objects() == []
    assert store.list_objects(RS, NS).objects() == []
