"""The ReplicaSet controller: replicas, slow start, claiming, deletion ranking and status."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import pods, replicaset
from clusterapi.store.errors import ApiError
from tests.clusterapi.controllers.conftest import (
    NS,
    POD,
    RS,
    Clock,
    active_pods_of,
    all_pods,
    finish_terminating,
    get,
    make_ready,
    pods_of,
    update,
)
from tests.clusterapi.controllers.conftest import (
    replicaset as make_rs,
)

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]


def orphan(name: str, labels: dict[str, str]) -> Obj:
    return store.create(
        POD,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
        },
        namespace=NS,
    ).obj


def test_slow_start_batches_double_and_stop_after_a_failing_batch() -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(len(calls) + 1)
        if len(calls) == 5:
            raise ApiError(403, "Forbidden", "exceeded quota")

    successes, failure = replicaset.slow_start_batch(20, 1, attempt)
    # Batches of 1, 2 and 4: the failure in the third batch stops the fourth (of 8).
    assert len(calls) == 7
    assert successes == 6
    assert failure is not None and failure.message == "exceeded quota"
    calls.clear()
    assert replicaset.slow_start_batch(10, 1, lambda: None) == (10, None)


def test_it_creates_the_missing_pods_from_the_template(ns: str) -> None:
    rs = make_rs("web", 3)
    assert replicaset.reconcile(NS, "web") is None
    created = pods_of(rs)
    assert len(created) == 3
    for pod in created:
        meta = pod["metadata"]
        assert meta["name"].startswith("web-") and len(meta["name"]) == len("web-") + 5
        assert meta["generateName"] == "web-"
        assert meta["labels"] == {"app": "web"}
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": rs["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert pod["spec"]["containers"][0]["image"] == "nginx:1.25"
    status = get(RS, "web")["status"]
    assert status == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "terminatingReplicas": 0,
        "observedGeneration": 1,
    }
    # Converged: another round changes nothing.
    version = get(RS, "web")["metadata"]["resourceVersion"]
    assert replicaset.reconcile(NS, "web") is None
    assert get(RS, "web")["metadata"]["resourceVersion"] == version
    assert len(pods_of(rs)) == 3


def test_failed_creates_stop_the_slow_start_and_set_replica_failure(
    ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = pods.create_pod
    calls = []

    def failing_create(template: Obj, owner: Obj, *, field_manager: str) -> Obj:
        calls.append(1)
        if len(calls) == 5:
            raise ApiError(403, "Forbidden", 'pods "web-x" is forbidden: exceeded quota')
        return real_create(template, owner, field_manager=field_manager)

    monkeypatch.setattr(pods, "create_pod", failing_create)
    rs = make_rs("web", 10)
    assert replicaset.reconcile(NS, "web") == replicaset.FAILURE_RETRY_SECONDS
    assert len(calls) == 7
    assert len(pods_of(rs)) == 6
    status = get(RS, "web")["status"]
    assert status["replicas"] == 6
    [condition] = status["conditions"]
    assert condition["type"] == "ReplicaFailure"
    assert condition["status"] == "True"
    assert condition["reason"] == "FailedCreate"
    assert "exceeded quota" in condition["message"]

    monkeypatch.setattr(pods, "create_pod", real_create)
    assert replicaset.reconcile(NS, "web") is None
    assert len(pods_of(rs)) == 10
    assert "conditions" not in get(RS, "web")["status"]


def test_a_large_scale_up_is_done_in_bursts(ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replicaset, "BURST_REPLICAS", 3)
    rs = make_rs("web", 5)
    assert replicaset.reconcile(NS, "web") == 0.0
    assert len(pods_of(rs)) == 3
    assert replicaset.reconcile(NS, "web") is None
    assert len(pods_of(rs)) == 5


def test_it_deletes_surplus_pods_unscheduled_then_pending_then_not_ready_first(
    ns: str, clock: Clock
) -> None:
    rs = make_rs("web", 5)
    replicaset.reconcile(NS, "web")
    first, second, third, fourth, fifth = sorted(pods_of(rs), key=lambda p: p["metadata"]["name"])
    make_ready(first, clock.stamp())
    make_ready(second, clock.stamp())
    # Bound and Running but not ready.
    update(POD, third["metadata"]["name"], lambda p: p["spec"].update(nodeName="node-1"))
    update(POD, third["metadata"]["name"], lambda p: p["status"].update(phase="Running"), "status")
    # Bound, still Pending.
    update(POD, fourth["metadata"]["name"], lambda p: p["spec"].update(nodeName="node-2"))
    # fifth stays unscheduled.

    update(RS, "web", lambda r: r["spec"].update(replicas=4))
    replicaset.reconcile(NS, "web")
    left = {p["metadata"]["name"] for p in active_pods_of(rs)}
    assert fifth["metadata"]["name"] not in left and len(left) == 4

    update(RS, "web", lambda r: r["spec"].update(replicas=2))
    replicaset.reconcile(NS, "web")
    left = {p["metadata"]["name"] for p in active_pods_of(rs)}
    assert left == {first["metadata"]["name"], second["metadata"]["name"]}
    # Bound pods get their grace period: terminating replicas until their node removes them.
    status = get(RS, "web")["status"]
    assert status["replicas"] == 2
    assert status["terminatingReplicas"] == 2
    finish_terminating()
    replicaset.reconcile(NS, "web")
    assert get(RS, "web")["status"]["terminatingReplicas"] == 0


def test_deletion_ranking_follows_upstream_order(clock: Clock) -> None:
    now = clock.now
    t = pods.format_time

    def pod(name: str, **kw: Any) -> Obj:
        status: Obj = {"phase": kw.get("phase", "Running")}
        if "ready_at" in kw:
            status["conditions"] = [
                {"type": "Ready", "status": "True", "lastTransitionTime": kw["ready_at"]}
            ]
        if "restarts" in kw:
            status["containerStatuses"] = [{"restartCount": kw["restarts"]}]
        meta: Obj = {
            "name": name,
            "uid": name,
            "creationTimestamp": kw.get("created", t(now.replace(year=2029))),
        }
        if "cost" in kw:
            meta["annotations"] = {pods.DELETION_COST_ANNOTATION: str(kw["cost"])}
        return {"metadata": meta, "spec": {"nodeName": kw.get("node", "n1")}, "status": status}

    old_ready = t(now.replace(year=2020))
    candidates = [
        pod("ready-old", ready_at=old_ready),
        pod("ready-new", ready_at=t(now.replace(second=0, minute=0, hour=0, day=1))),
        pod("ready-old-costly", ready_at=old_ready, cost=100),
        pod("unknown", phase="Unknown"),
        pod("pending", phase="Pending"),
        pod("running-not-ready"),
        pod("unscheduled", phase="Pending", node=""),
        pod("restarts", restarts=5),
    ]
    order = [p["metadata"]["name"] for p in pods.rank_for_deletion(candidates, now=now)]
    assert order[:3] == ["unscheduled", "pending", "unknown"]
    # Not ready before ready; among the not-ready ones, more restarts first.
    assert order[3:5] == ["restarts", "running-not-ready"]
    # Ready: lower deletion cost first, then the most recently ready.
    assert order[5:] == ["ready-new", "ready-old", "ready-old-costly"]


def test_doubled_up_pods_are_deleted_before_lone_ones(clock: Clock) -> None:
    def pod(name: str, node: str) -> Obj:
        return {
            "metadata": {"name": name, "uid": name, "creationTimestamp": clock.stamp()},
            "spec": {"nodeName": node},
            "status": {"phase": "Running"},
        }

    lone, crowded_a, crowded_b = pod("lone", "n1"), pod("a", "n2"), pod("b", "n2")
    ranked = pods.rank_for_deletion([lone, crowded_a, crowded_b], [lone, crowded_a, crowded_b])
    assert ranked[-1]["metadata"]["name"] == "lone"


def test_status_counts_ready_and_available_after_min_ready_seconds(ns: str, clock: Clock) -> None:
    rs = make_rs("web", 2, minReadySeconds=10)
    replicaset.reconcile(NS, "web")
    for pod in pods_of(rs):
        make_ready(pod, clock.stamp())
    clock.advance(4)
    # Ready but not yet available: look again when the first one becomes available.
    again = replicaset.reconcile(NS, "web")
    assert again is not None and 6 <= again <= 8
    status = get(RS, "web")["status"]
    assert status["readyReplicas"] == 2 and "availableReplicas" not in status
    clock.advance(7)
    assert replicaset.reconcile(NS, "web") is None
    assert get(RS, "web")["status"]["availableReplicas"] == 2


def test_it_adopts_matching_orphans_instead_of_creating(ns: str) -> None:
    orphan("stray", {"app": "web"})
    orphan("other", {"app": "db"})
    rs = make_rs("web", 2)
    replicaset.reconcile(NS, "web")
    owned = {p["metadata"]["name"] for p in pods_of(rs)}
    assert "stray" in owned and "other" not in owned and len(owned) == 2
    assert pods.controller_ref(get(POD, "other")) is None


def test_it_releases_pods_that_stop_matching_and_replaces_them(ns: str) -> None:
    rs = make_rs("web", 2)
    replicaset.reconcile(NS, "web")
    victim = pods_of(rs)[0]["metadata"]["name"]
    update(POD, victim, lambda p: p["metadata"]["labels"].update(app="debug"))
    replicaset.reconcile(NS, "web")
    assert "ownerReferences" not in get(POD, victim)["metadata"]
    names = {p["metadata"]["name"] for p in pods_of(rs)}
    assert victim not in names and len(names) == 2


def test_pods_controlled_by_another_owner_are_left_alone(ns: str) -> None:
    make_rs("first", 1, {"app": "web"})
    replicaset.reconcile(NS, "first")
    second = make_rs("second", 1, {"app": "web"})
    replicaset.reconcile(NS, "second")
    assert len(pods_of(second)) == 1
    assert len(all_pods()) == 2


def test_a_replicaset_being_deleted_creates_and_adopts_nothing(ns: str) -> None:
    rs = store.create(
        RS,
        {
            "metadata": {"name": "web", "finalizers": ["example.com/hold"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x:1"}]},
                },
            },
        },
        namespace=NS,
    ).obj
    store.delete(RS, NS, "web")
    orphan("stray", {"app": "web"})
    replicaset.reconcile(NS, "web")
    assert pods_of(rs) == []
    assert get(RS, "web")["status"]["replicas"] == 0


def test_pod_changes_wake_their_owner_and_orphans_wake_matching_owners(ns: str) -> None:
    rs = make_rs("web", 1)
    replicaset.reconcile(NS, "web")
    [pod] = pods_of(rs)
    assert replicaset.CONTROLLER.keys_for("Pod", pod) == [(NS, "web")]
    stray = orphan("stray", {"app": "web"})
    assert replicaset.CONTROLLER.keys_for("Pod", stray) == [(NS, "web")]
    assert replicaset.CONTROLLER.keys_for("Pod", orphan("lonely", {"app": "db"})) == []
