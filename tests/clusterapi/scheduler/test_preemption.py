"""DefaultPreemption: minimal victims, node choice, PodDisruptionBudgets, and the flow
through the store (victims marked and deleted, the preemptor nominated, then bound)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clusterapi import store
from clusterapi.scheduler import Scheduler, preemption
from clusterapi.scheduler.framework import Framework, PodInfo, Snapshot, default_profile
from tests.clusterapi.scheduler import helpers
from tests.clusterapi.scheduler.conftest import (
    NS,
    PDB,
    POD,
    PRIORITY_CLASS,
    condition,
    events_for,
    get_pod,
)

Obj = dict[str, Any]


def run(snap: Snapshot, incoming: Obj, pdbs: list[Obj] = ()) -> preemption.Outcome:  # type: ignore[assignment]
    framework = Framework(default_profile())
    pod = PodInfo(incoming)
    result = framework.evaluate(pod, snap)
    assert not result.totals, "the pod must not fit anywhere for preemption to run"
    return preemption.preempt(framework, pod, result, snap, pdbs)


def names(pods: list[PodInfo]) -> list[str]:
    return [p.name for p in pods]


def test_victims_are_the_fewest_lowest_priority_pods_that_make_room() -> None:
    snap = helpers.snapshot(
        [helpers.node("n", cpu="4")],
        [
            helpers.pod("low1", cpu="1", priority=1, node_name="n"),
            helpers.pod("low2", cpu="1", priority=2, node_name="n"),
            helpers.pod("low3", cpu="2", priority=3, node_name="n"),
        ],
    )
    outcome = run(snap, helpers.pod("vip", cpu="2", priority=10))
    assert outcome.node == "n"
    # low3 (the most important) is given back first and still leaves room; the others go.
    assert sorted(names(outcome.victims)) == ["low1", "low2"]


def test_the_node_with_the_least_important_victims_is_chosen() -> None:
    snap = helpers.snapshot(
        [helpers.node("a", cpu="2"), helpers.node("b", cpu="2")],
        [
            helpers.pod("mid", cpu="2", priority=50, node_name="a"),
            helpers.pod("low", cpu="2", priority=5, node_name="b"),
        ],
    )
    outcome = run(snap, helpers.pod("vip", cpu="2", priority=100))
    assert (outcome.node, names(outcome.victims)) == ("b", ["low"])


def test_fewer_victims_win_among_equal_priorities() -> None:
    snap = helpers.snapshot(
        [helpers.node("a", cpu="2"), helpers.node("b", cpu="2")],
        [
            helpers.pod("a1", cpu="1", priority=5, node_name="a"),
            helpers.pod("a2", cpu="1", priority=5, node_name="a"),
            helpers.pod("b1", cpu="2", priority=5, node_name="b"),
        ],
    )
    outcome = run(snap, helpers.pod("vip", cpu="2", priority=100))
    assert (outcome.node, names(outcome.victims)) == ("b", ["b1"])


def test_pod_disruption_budgets_are_respected_where_possible() -> None:
    snap = helpers.snapshot(
        [helpers.node("a", cpu="2"), helpers.node("b", cpu="2")],
        [
            helpers.pod("guarded", cpu="2", priority=1, labels={"app": "db"}, node_name="a"),
            helpers.pod("free", cpu="2", priority=5, node_name="b"),
        ],
    )
    pdb = {
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}},
        "status": {"disruptionsAllowed": 0},
    }
    # Without the budget the lower-priority victim on "a" would be chosen.
    assert run(snap, helpers.pod("vip", cpu="2", priority=100)).node == "a"
    outcome = run(snap, helpers.pod("vip", cpu="2", priority=100), [pdb])
    assert (outcome.node, names(outcome.victims)) == ("b", ["free"])


def test_preemption_cannot_help_with_unresolvable_failures_or_without_victims() -> None:
    snap = helpers.snapshot(
        [
            helpers.node("tainted", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
            helpers.node("full", cpu="1"),
        ],
        [helpers.pod("peer", cpu="1", priority=100, node_name="full")],
    )
    outcome = run(snap, helpers.pod("vip", cpu="1", priority=100))
    assert outcome.node is None
    assert outcome.message == (
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling."
    )


def test_preemption_policy_never_does_not_preempt() -> None:
    snap = helpers.snapshot(
        [helpers.node("n", cpu="1")], [helpers.pod("low", cpu="1", priority=1, node_name="n")]
    )
    outcome = run(snap, helpers.pod("polite", cpu="1", priority=10, preemptionPolicy="Never"))
    assert outcome.node is None
    assert outcome.message == "preemption: not eligible due to preemptionPolicy=Never."


def test_preemption_through_the_store(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    store.create(PRIORITY_CLASS, {"metadata": {"name": "low"}, "value": 10})
    store.create(PRIORITY_CLASS, {"metadata": {"name": "high"}, "value": 1000})
    add_node("n1", cpu="2")
    add_pod("batch-1", cpu="1", priorityClassName="low", node_name="n1")
    add_pod("batch-2", cpu="1", priorityClassName="low", node_name="n1")
    add_pod("urgent", cpu="1500m", priorityClassName="high")

    outcome = sched.schedule_one(NS, "urgent")
    assert outcome.node is None and outcome.nominated == "n1"
    # The message is the filter failure alone: preemption succeeded.
    assert outcome.message == "0/1 nodes are available: 1 Insufficient cpu."
    urgent = get_pod("urgent")
    assert urgent["status"]["nominatedNodeName"] == "n1"
    for victim in ("batch-1", "batch-2"):
        pod = get_pod(victim)  # bound pods get their grace period
        assert pod["metadata"].get("deletionTimestamp")
        target = condition(pod, "DisruptionTarget")
        assert target is not None and target["reason"] == "PreemptionByScheduler"
        assert (
            target["message"]
            == "default-scheduler: preempting to accommodate a higher priority pod"
        )
        [event] = [e for e in events_for(victim) if e["reason"] == "Preempted"]
        assert event["message"] == f"Preempted by pod {urgent['metadata']['uid']} on node n1"

    # A lower-priority newcomer may not take the room being freed.
    add_pod("sneaky", cpu="500m", priorityClassName="low")
    # The victims' node agent stops them; the store then removes them.
    for victim in ("batch-1", "batch-2"):
        store.delete(POD, NS, victim, grace_period=0)
    sched.queue.clock = lambda: 10**9
    result = sched.schedule_pending(keep_outcomes=True)
    assert get_pod("urgent")["spec"]["nodeName"] == "n1"
    assert result.outcomes[0].name == "urgent"


def test_a_pending_preemptor_does_not_preempt_again(
    sched: Scheduler, add_node: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    store.create(PRIORITY_CLASS, {"metadata": {"name": "high"}, "value": 1000})
    add_node("n1", cpu="1")
    add_pod("old", cpu="1", node_name="n1")
    add_pod("urgent", cpu="1", priorityClassName="high")
    assert sched.schedule_one(NS, "urgent").nominated == "n1"
    # "old" is terminating (grace period) and was preempted: no second round.
    second = sched.schedule_one(NS, "urgent")
    assert second.node is None
    assert second.message.endswith(
        "preemption: not eligible due to a terminating pod on the nominated node."
    )
    assert store.list_objects(PDB, NS).objects() == []
