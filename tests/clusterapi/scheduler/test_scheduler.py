"""Scheduling through the store: binds, conditions, events, order, retries, the controller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clusterapi import store
from clusterapi.scheduler import SWEEP, Scheduler
from clusterapi.scheduler import controller as scheduler_controller
from clusterapi.scheduler import scheduler as scheduler_module
from clusterapi.scheduler.queue import FLUSH_SECONDS
from clusterapi.store.errors import ApiError
from tests.clusterapi.scheduler.conftest import (
    NODE,
    NS,
    POD,
    PRIORITY_CLASS,
    condition,
    events_for,
    get_pod,
)

Obj = dict[str, Any]


def test_a_pod_is_bound_with_podscheduled_true_and_a_scheduled_event(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_node("n1")
    add_pod("web", cpu="500m")
    outcome = sched.schedule_one(NS, "web")
    assert outcome.node == "n1"
    pod = get_pod("web")
    assert pod["spec"]["nodeName"] == "n1"
    scheduled = condition(pod, "PodScheduled")
    assert scheduled is not None and scheduled["status"] == "True"
    [event] = events_for("web")
    assert (event["type"], event["reason"]) == ("Normal", "Scheduled")
    assert event["message"] == f"Successfully assigned {NS}/web to n1"
    assert event["source"]["component"] == "default-scheduler"


def test_an_unschedulable_pod_gets_the_condition_and_event_in_upstream_format(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_node("n1", unschedulable=True)
    add_node("n2", cpu="1")
    add_node("n3", cpu="1")
    add_pod("big", cpu="2")
    outcome = sched.schedule_one(NS, "big")
    expected = (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    assert outcome.node is None and outcome.message == expected
    pod = get_pod("big")
    assert "nodeName" not in pod["spec"]
    scheduled = condition(pod, "PodScheduled")
    assert scheduled is not None
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert scheduled["message"] == expected
    [event] = events_for("big")
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "FailedScheduling",
        expected,
    )
    # Failing again the same way counts the same event up and keeps the condition's time.
    before = scheduled["lastTransitionTime"]
    sched.schedule_one(NS, "big")
    [event] = events_for("big")
    assert event["count"] == 2
    assert condition(get_pod("big"), "PodScheduled")["lastTransitionTime"] == before  # type: ignore[index]


def test_a_pod_that_fits_nowhere_schedules_once_a_node_that_fits_joins(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_node("small", cpu="1")
    add_pod("big", cpu="3")
    result = sched.schedule_pending()
    assert (result.scheduled, result.unschedulable) == (0, 1)
    # Backing off, and nothing changed: not retried yet.
    assert sched.schedule_pending().unschedulable == 0
    add_node("large", cpu="8")
    sched.queue.clock = lambda: 10**9  # the backoff has passed
    result = sched.schedule_pending()
    assert result.scheduled == 1
    assert get_pod("big")["spec"]["nodeName"] == "large"
    assert condition(get_pod("big"), "PodScheduled")["status"] == "True"  # type: ignore[index]


def test_binding_is_compare_and_swap_on_an_unset_node_name(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_node("n1")
    add_node("n2")
    add_pod("web")
    sched.cache.sync()
    pending = sched.cache.pending[(NS, "web")]

    def assign(obj: Obj) -> Obj:
        obj["spec"]["nodeName"] = "n2"
        return obj

    store.guaranteed_update(POD, NS, "web", assign)  # someone else binds it first
    outcome = sched._bind(pending, "n1")
    assert outcome.node is None
    assert 'already assigned to node "n2"' in outcome.error
    assert get_pod("web")["spec"]["nodeName"] == "n2"
    assert (NS, "web") not in sched.cache.pending


def test_pods_are_scheduled_by_priority_then_age(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    store.create(PRIORITY_CLASS, {"metadata": {"name": "high"}, "value": 1000})
    add_node("only", cpu="1")
    add_pod("first-low", cpu="1")
    add_pod("later-high", cpu="1", priorityClassName="high")
    result = sched.schedule_pending(keep_outcomes=True)
    assert [o.name for o in result.outcomes] == ["later-high", "first-low"]
    assert get_pod("later-high")["spec"]["nodeName"] == "only"
    assert "nodeName" not in get_pod("first-low")["spec"]


def test_pods_for_other_schedulers_and_gated_pods_are_left_alone(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_node("n1")
    add_pod("custom", schedulerName="my-scheduler")
    add_pod("gated", schedulingGates=[{"name": "example.com/wait"}])
    assert sched.schedule_pending().scheduled == 0
    assert "nodeName" not in get_pod("custom")["spec"]
    assert "nodeName" not in get_pod("gated")["spec"]


def test_a_batch_spreads_a_burst_over_the_nodes_and_respects_capacity(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    for i in range(4):
        add_node(f"n{i}", cpu="1", pods="5")
    for i in range(12):
        add_pod(f"p{i}", cpu="300m")
    result = sched.schedule_pending()
    assert (result.scheduled, result.unschedulable) == (12, 0)
    per_node: dict[str, int] = {}
    for pod in store.list_objects(POD, NS).objects():
        per_node[pod["spec"]["nodeName"]] = per_node.get(pod["spec"]["nodeName"], 0) + 1
    assert per_node == {f"n{i}": 3 for i in range(4)}  # 3 x 300m fit in 1 cpu, 4 do not


def test_a_batch_whose_writes_fail_to_commit_leaves_nothing_assumed(
    sched: Scheduler,
    add_node: Callable[..., Obj],
    add_pod: Callable[..., Obj],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_node("n1", cpu="1")
    for name in ("a", "b"):
        add_pod(name, cpu="400m")
    real_schedule = sched._schedule
    calls = 0

    def second_fails(pod: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the database went away")
        return real_schedule(pod)

    monkeypatch.setattr(sched, "_schedule", second_fails)
    monkeypatch.setattr(scheduler_module, "WRITE_RUN_SECONDS", 60.0)  # one run for both
    with pytest.raises(RuntimeError):
        sched.schedule_pending()
    # The first bind shared the failed transaction: it is not in the store, and the cache
    # that had assumed it lists again instead of counting its 400m on n1.
    assert "nodeName" not in get_pod("a")["spec"]
    monkeypatch.setattr(sched, "_schedule", real_schedule)
    result = sched.schedule_pending()
    assert (result.scheduled, result.unschedulable) == (2, 0)
    assert {get_pod(n)["spec"]["nodeName"] for n in ("a", "b")} == {"n1"}


def test_the_cache_sees_pods_that_leave_and_frees_their_room(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_node("n1", cpu="1")
    add_pod("old", cpu="1", node_name="n1")
    add_pod("new", cpu="1")
    assert sched.schedule_one(NS, "new").node is None
    store.delete(POD, NS, "old", grace_period=0)
    assert sched.schedule_one(NS, "new").node == "n1"


def test_the_controller_reconciles_pods_and_sweeps(
    sched: Scheduler,
    add_node: Callable[..., Obj],
    add_pod: Callable[..., Obj],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clusterapi.controllers import tasks

    later: list[tuple[str, str, float]] = []
    monkeypatch.setattr(
        tasks, "enqueue", lambda c, ns, name, delay=0.0, **_: later.append((ns, name, delay))
    )
    add_node("n1", cpu="1")
    add_pod("a", cpu="600m")
    add_pod("b", cpu="600m")
    again = scheduler_controller.reconcile(NS, "a")  # one reconcile schedules the batch
    assert again is None
    assert get_pod("a")["spec"]["nodeName"] == "n1"
    # b did not fit: its retry after the backoff is handed to the one sweep key, not a
    # timer of its own; the sweep then reschedules itself while anything waits.
    assert scheduler_controller.reconcile(NS, "b") is None
    [(ns, name, delay)] = later
    assert (ns, name) == SWEEP and 0 < delay <= FLUSH_SECONDS
    sweep_again = scheduler_controller.reconcile(*SWEEP)
    assert sweep_again is not None and 0 < sweep_again <= FLUSH_SECONDS
    # A node joining wakes the sweep, which schedules b once its backoff is over.
    node = add_node("n2", cpu="1")
    assert scheduler_controller.CONTROLLER.keys_for("Node", node) == [SWEEP]
    sched.queue.clock = lambda: 10**9
    assert scheduler_controller.reconcile(*SWEEP) is None
    assert get_pod("b")["spec"]["nodeName"] == "n2"
    # Bound pods and unknown pods need nothing.
    assert scheduler_controller.reconcile(NS, "a") is None
    assert scheduler_controller.reconcile(NS, "missing") is None


def test_the_controller_declaration() -> None:
    controller = scheduler_controller.CONTROLLER
    assert (controller.name, controller.kind, controller.singleton) == ("scheduler", "Pod", True)
    leaving = {
        "metadata": {"name": "x", "namespace": NS, "deletionTimestamp": "2030-01-01T00:00:00Z"},
        "spec": {"nodeName": "n1"},
    }
    assert SWEEP in controller.keys_for("Pod", leaving)
    # A pending pod wakes the one sweep too: a burst of creates folds into one task.
    pending = {"metadata": {"name": "y", "namespace": NS}, "spec": {}}
    assert controller.keys_for("Pod", pending) == [SWEEP]
    bound = {"metadata": {"name": "z", "namespace": NS}, "spec": {"nodeName": "n1"}}
    assert controller.keys_for("Pod", bound) == []
    elsewhere = {"metadata": {"name": "w", "namespace": NS}, "spec": {"schedulerName": "other"}}
    assert controller.keys_for("Pod", elsewhere) == []


def test_a_deleted_pod_is_forgotten(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_pod("ghost")
    sched.cache.sync()
    store.delete(POD, NS, "ghost")
    outcome = sched.schedule_one(NS, "ghost")
    assert outcome.node is None and outcome.error == "not pending"
    with pytest.raises(ApiError):
        get_pod("ghost")


def test_nodes_removed_from_the_store_leave_the_cache(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_node("gone")
    sched.cache.sync()
    store.delete(NODE, "", "gone")
    add_pod("web")
    outcome = sched.schedule_one(NS, "web")
    assert outcome.node is None
    assert outcome.message == "no nodes available to schedule pods"


def test_only_changes_that_may_make_room_count_as_moves(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    add_node("n1", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    add_pod("bound", node_name="n1")
    cache = sched.cache
    cache.sync()
    moves = cache.moves

    def heartbeat(obj: Obj) -> Obj:
        obj["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        return obj

    store.guaranteed_update(NODE, "", "n1", heartbeat, subresource="status")
    store.guaranteed_update(
        POD,
        NS,
        "bound",
        lambda o: {**o, "status": {**o["status"], "phase": "Running"}},
        subresource="status",
    )
    cache.sync()
    assert cache.moves == moves  # a heartbeat and a pod's status report free nothing

    store.guaranteed_update(NODE, "", "n1", lambda o: {**o, "spec": {}})  # untainted
    cache.sync()
    assert cache.moves == moves + 1
    store.delete(POD, NS, "bound", grace_period=0)
    cache.sync()
    assert cache.moves == moves + 2
