"""The DaemonSet controller: placement, node changes, clean-up, rolling updates and status."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import daemonset, history, pods
from clusterapi.controllers.daemonset import placement
from clusterapi.store.errors import ApiError
from tests.clusterapi.controllers.conftest import (
    DAEMONSET,
    NODE,
    NS,
    POD,
    Clock,
    events_of,
    finish_terminating,
    get,
    make_ready,
    node,
    pods_of,
    revisions_of,
    set_image,
    update,
)
from tests.clusterapi.controllers.conftest import daemonset as make_ds

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]


def live_pods(owner: Obj) -> list[Obj]:
    return [p for p in pods_of(owner) if not p["metadata"].get("deletionTimestamp")]


def by_node(owner: Obj) -> dict[str, list[str]]:
    """Target node → images of the owner's live pods there."""
    out: dict[str, list[str]] = {}
    for pod in live_pods(owner):
        out.setdefault(placement.target_node(pod), []).append(pod["spec"]["containers"][0]["image"])
    return {k: sorted(v) for k, v in sorted(out.items())}


def schedule_and_ready(owner: Obj, clock: Clock) -> None:
    """What the scheduler and node agents do: bind each pod to its node and report it ready."""
    for pod in live_pods(owner):
        if not pods.is_ready(pod) and pods.phase(pod) not in pods.TERMINAL_PHASES:
            make_ready(pod, clock.stamp(), node=placement.target_node(pod))


def test_it_runs_one_pinned_pod_per_node_with_automatic_tolerations(ns: str, clock: Clock) -> None:
    node("node-a")
    node("node-b")
    ds = make_ds("agent")
    assert daemonset.reconcile(NS, "agent") is None
    assert by_node(ds) == {"node-a": ["fluentd:1"], "node-b": ["fluentd:1"]}
    pod = next(p for p in live_pods(ds) if placement.target_node(p) == "node-a")
    assert pod["metadata"]["generateName"] == "agent-"
    assert "nodeName" not in pod["spec"]
    assert pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ] == {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}
        ]
    }
    tolerations = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert tolerations == set(daemonset.AUTO_TOLERATIONS)
    assert all("tolerationSeconds" not in t for t in pod["spec"]["tolerations"])
    [revision] = revisions_of(ds)
    assert (
        pod["metadata"]["labels"][history.HASH_LABEL]
        == (revision["metadata"]["labels"][history.HASH_LABEL])
    )
    status = get(DAEMONSET, "agent")["status"]
    assert status == {
        "currentNumberScheduled": 2,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 2,
        "numberReady": 0,
        "observedGeneration": 1,
        "updatedNumberScheduled": 2,
        "numberUnavailable": 2,
        "collisionCount": 0,
    }
    assert ("Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}") in (
        events_of(ds)
    )
    schedule_and_ready(ds, clock)
    daemonset.reconcile(NS, "agent")
    status = get(DAEMONSET, "agent")["status"]
    assert status["numberReady"] == status["numberAvailable"] == 2
    assert "numberUnavailable" not in status


def test_host_network_pods_also_tolerate_network_unavailable(ns: str) -> None:
    node(
        "node-a", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]
    )
    plain = make_ds("plain")
    host = store.create(
        DAEMONSET,
        {
            "metadata": {"name": "host"},
            "spec": {
                "selector": {"matchLabels": {"app": "host"}},
                "template": {
                    "metadata": {"labels": {"app": "host"}},
                    "spec": {
                        "hostNetwork": True,
                        "containers": [{"name": "c", "image": "cni:1"}],
                    },
                },
            },
        },
        namespace=NS,
    ).obj
    daemonset.reconcile(NS, "plain")
    daemonset.reconcile(NS, "host")
    assert by_node(plain) == {}
    assert by_node(host) == {"node-a": ["cni:1"]}


def test_node_selector_affinity_and_taints_decide_eligibility(ns: str) -> None:
    node("ssd", labels={"disk": "ssd"})
    node("hdd", labels={"disk": "hdd"})
    node("tainted", labels={"disk": "ssd"}, taints=[{"key": "gpu", "effect": "NoSchedule"}])
    node("cordoned", labels={"disk": "ssd"}, taints=[placement_taint("unschedulable")])
    node("pressured", labels={"disk": "ssd"}, taints=[placement_taint("memory-pressure")])
    ds = make_ds("agent")
    update(
        DAEMONSET,
        "agent",
        lambda d: d["spec"]["template"]["spec"].update(nodeSelector={"disk": "ssd"}),
    )
    daemonset.reconcile(NS, "agent")
    assert sorted(by_node(ds)) == ["cordoned", "pressured", "ssd"]
    status = get(DAEMONSET, "agent")["status"]
    assert status["desiredNumberScheduled"] == 3

    def require_not_pressured(d: Obj) -> None:
        d["spec"]["template"]["spec"]["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "NotIn",
                                    "values": ["pressured"],
                                }
                            ]
                        }
                    ]
                }
            }
        }

    update(DAEMONSET, "agent", require_not_pressured)
    daemonset.reconcile(NS, "agent")
    finish_terminating()
    daemonset.reconcile(NS, "agent")
    assert sorted(by_node(ds)) == ["cordoned", "ssd"]


def placement_taint(condition: str) -> Obj:
    return {"key": f"node.kubernetes.io/{condition}", "effect": "NoSchedule"}


def test_node_should_run_distinguishes_no_schedule_from_no_execute() -> None:
    template: Obj = {"spec": {"containers": [{"name": "c", "image": "x"}]}}
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    tainted: Obj = {"metadata": {"name": "n"}, "spec": {"taints": [taint]}}
    assert placement.node_should_run(tainted, template) == (False, True)
    tainted["spec"]["taints"] = [{**taint, "effect": "NoExecute"}]
    assert placement.node_should_run(tainted, template) == (False, False)
    template["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    assert placement.node_should_run(tainted, template) == (True, True)
    template["spec"]["nodeName"] = "other"
    assert placement.node_should_run(tainted, template) == (False, False)


def test_pods_follow_nodes_joining_leaving_and_changing(ns: str, clock: Clock) -> None:
    node("node-a", labels={"role": "edge"})
    ds = make_ds("agent")
    update(
        DAEMONSET,
        "agent",
        lambda d: d["spec"]["template"]["spec"].update(nodeSelector={"role": "edge"}),
    )
    daemonset.reconcile(NS, "agent")
    schedule_and_ready(ds, clock)
    node("node-b", labels={"role": "edge"})
    daemonset.reconcile(NS, "agent")
    assert sorted(by_node(ds)) == ["node-a", "node-b"]
    # node-a stops being eligible: its bound pod is deleted gracefully.
    update(NODE, "node-a", lambda n: n["metadata"]["labels"].update(role="core"))
    daemonset.reconcile(NS, "agent")
    assert sorted(by_node(ds)) == ["node-b"]
    status = get(DAEMONSET, "agent")["status"]
    assert status["desiredNumberScheduled"] == 1
    assert status["numberMisscheduled"] == 1  # still terminating there
    finish_terminating()
    # node-b leaves: its pod goes with it, even though no kubelet will confirm.
    schedule_and_ready(ds, clock)
    store.delete(NODE, "", "node-b")
    daemonset.reconcile(NS, "agent")
    assert pods_of(ds) == []
    status = get(DAEMONSET, "agent")["status"]
    assert status["desiredNumberScheduled"] == status["numberMisscheduled"] == 0


def test_duplicates_are_reduced_to_the_oldest_pod(ns: str, clock: Clock) -> None:
    node("node-a")
    ds = make_ds("agent")
    daemonset.reconcile(NS, "agent")
    schedule_and_ready(ds, clock)
    [first] = live_pods(ds)
    template = placement.pin_to_node(placement.daemon_template(ds), "node-a")
    template["metadata"]["labels"] = first["metadata"]["labels"]
    pods.create_pod(template, ds, field_manager="test")
    assert len(live_pods(ds)) == 2
    daemonset.reconcile(NS, "agent")
    [kept] = live_pods(ds)
    assert kept["metadata"]["uid"] == first["metadata"]["uid"]


def test_failed_pods_are_killed_with_back_off_and_replaced(ns: str, clock: Clock) -> None:
    node("node-a")
    ds = make_ds("agent")
    daemonset.reconcile(NS, "agent")
    schedule_and_ready(ds, clock)

    def fail() -> str:
        [pod] = live_pods(ds)
        update(POD, pod["metadata"]["name"], lambda p: p["status"].update(phase="Failed"), "status")
        return str(pod["metadata"]["name"])

    first = fail()
    assert daemonset.reconcile(NS, "agent") is None
    assert any(
        r == "FailedDaemonPod"
        and m == f"Found failed daemon pod {NS}/{first} on node node-a, will try to kill it"
        for _t, r, m in events_of(ds)
    )
    daemonset.reconcile(NS, "agent")
    [replacement] = live_pods(ds)
    assert replacement["metadata"]["name"] != first
    # A second failure within the back-off waits (1 s, then doubling).
    fail()
    delay = daemonset.reconcile(NS, "agent")
    assert delay is not None and 0 < delay <= 1.0
    assert pods.phase(live_pods(ds)[0]) == "Failed"
    clock.advance(1.5)
    assert daemonset.reconcile(NS, "agent") is None
    daemonset.reconcile(NS, "agent")
    assert pods.phase(live_pods(ds)[0]) != "Failed"


def test_rolling_update_replaces_at_most_max_unavailable_pods_at_a_time(
    ns: str, clock: Clock
) -> None:
    for name in ("node-a", "node-b", "node-c"):
        node(name)
    ds = make_ds("agent")
    daemonset.reconcile(NS, "agent")
    schedule_and_ready(ds, clock)
    daemonset.reconcile(NS, "agent")
    set_image(DAEMONSET, "agent", "fluentd:2")
    daemonset.reconcile(NS, "agent")
    terminating = [p for p in pods_of(ds) if p["metadata"].get("deletionTimestamp")]
    assert len(terminating) == 1
    # The replaced pod is still terminating: nothing else is touched.
    daemonset.reconcile(NS, "agent")
    assert len([p for p in pods_of(ds) if p["metadata"].get("deletionTimestamp")]) == 1
    for _ in range(10):
        finish_terminating()
        daemonset.reconcile(NS, "agent")
        schedule_and_ready(ds, clock)
        daemonset.reconcile(NS, "agent")
    assert by_node(ds) == {n: ["fluentd:2"] for n in ("node-a", "node-b", "node-c")}
    status = get(DAEMONSET, "agent")["status"]
    assert status["updatedNumberScheduled"] == status["numberAvailable"] == 3
    assert status["observedGeneration"] == 2
    assert [r["revision"] for r in revisions_of(ds)] == [1, 2]


def test_rolling_update_with_surge_starts_the_new_pod_first(ns: str, clock: Clock) -> None:
    node("node-a")
    ds = make_ds(
        "agent",
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
    )
    daemonset.reconcile(NS, "agent")
    schedule_and_ready(ds, clock)
    set_image(DAEMONSET, "agent", "fluentd:2")
    daemonset.reconcile(NS, "agent")
    assert by_node(ds) == {"node-a": ["fluentd:1", "fluentd:2"]}
    daemonset.reconcile(NS, "agent")
    assert by_node(ds) == {"node-a": ["fluentd:1", "fluentd:2"]}
    schedule_and_ready(ds, clock)
    daemonset.reconcile(NS, "agent")
    finish_terminating()
    assert by_node(ds) == {"node-a": ["fluentd:2"]}


def test_on_delete_leaves_old_pods_until_deleted(ns: str, clock: Clock) -> None:
    node("node-a")
    ds = make_ds("agent", updateStrategy={"type": "OnDelete"})
    daemonset.reconcile(NS, "agent")
    set_image(DAEMONSET, "agent", "fluentd:2")
    daemonset.reconcile(NS, "agent")
    assert by_node(ds) == {"node-a": ["fluentd:1"]}
    assert "updatedNumberScheduled" not in get(DAEMONSET, "agent")["status"]
    [pod] = live_pods(ds)
    store.delete(POD, NS, pod["metadata"]["name"])
    daemonset.reconcile(NS, "agent")
    assert by_node(ds) == {"node-a": ["fluentd:2"]}


def test_percent_limits_round_up() -> None:
    ds = {"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 0}}}}
    assert daemonset._rolling_limits(ds, 25) == (0, 3)
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": "0%"}
    assert daemonset._rolling_limits(ds, 25) == (0, 1)


def test_failed_creates_set_a_failure_condition(
    ns: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    node("node-a")

    def refuse(template: Obj, owner: Obj, *, field_manager: str) -> Obj:
        raise ApiError(403, "Forbidden", "exceeded quota")

    real = pods.create_pod
    monkeypatch.setattr(pods, "create_pod", refuse)
    ds = make_ds("agent")
    assert daemonset.reconcile(NS, "agent") == daemonset.FAILURE_RETRY_SECONDS
    [condition] = get(DAEMONSET, "agent")["status"]["conditions"]
    assert condition["type"] == "ReplicaFailure" and "exceeded quota" in condition["message"]
    assert ("Warning", "FailedCreate", "Error creating: exceeded quota") in events_of(ds)
    monkeypatch.setattr(pods, "create_pod", real)
    assert daemonset.reconcile(NS, "agent") is None
    assert "conditions" not in get(DAEMONSET, "agent")["status"]


def test_node_changes_wake_every_daemonset_and_pods_wake_their_owner(ns: str) -> None:
    node("node-a")
    make_ds("one")
    make_ds("two")
    keys = daemonset.CONTROLLER.keys_for("Node", get(NODE, "node-a", namespace=""))
    assert sorted(keys) == [(NS, "one"), (NS, "two")]
    daemonset.reconcile(NS, "one")
    [pod] = store.list_objects(POD, NS).objects()
    assert daemonset.CONTROLLER.keys_for("Pod", pod) == [(NS, "one")]
