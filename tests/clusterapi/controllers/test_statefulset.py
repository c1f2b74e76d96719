"""The StatefulSet controller: ordinals, ordering, rollouts, claims, revisions and status."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import history, pods, statefulset
from clusterapi.store.errors import ApiError
from tests.clusterapi.controllers.conftest import (
    CLAIM,
    NS,
    POD,
    REVISION,
    STATEFULSET,
    Clock,
    events_of,
    finish_terminating,
    get,
    make_ready,
    pod_named,
    pods_of,
    revisions_of,
    set_image,
    update,
)
from tests.clusterapi.controllers.conftest import statefulset as make_sts

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]


def names(owner: Obj) -> list[str]:
    return sorted(
        p["metadata"]["name"] for p in pods_of(owner) if not p["metadata"].get("deletionTimestamp")
    )


def image_of(name: str) -> str:
    pod = pod_named(name)
    assert pod is not None
    return str(pod["spec"]["containers"][0]["image"])


def converge(name: str, clock: Clock, rounds: int = 30) -> None:
    """Reconcile, playing scheduler and node agent, until nothing is left to do."""
    for _ in range(rounds):
        statefulset.reconcile(NS, name)
        finish_terminating()
        sts = get(STATEFULSET, name)
        pending = [p for p in pods_of(sts) if pods.is_active(p) and not pods.is_ready(p)]
        for pod in pending:
            make_ready(pod, clock.stamp())
        if not pending and not any(p["metadata"].get("deletionTimestamp") for p in pods_of(sts)):
            statefulset.reconcile(NS, name)
            status = get(STATEFULSET, name)["status"]
            want = sts["spec"]["replicas"]
            counts = ("replicas", "readyReplicas", "updatedReplicas")
            if all(status.get(key, 0) == want for key in counts):
                return
    raise AssertionError("did not converge")


def test_ordered_ready_creates_one_pod_at_a_time_with_a_stable_identity(
    ns: str, clock: Clock
) -> None:
    sts = make_sts("web", 3)
    assert statefulset.reconcile(NS, "web") is None
    assert names(sts) == ["web-0"]
    # web-0 is not Running and Ready yet: web-1 waits.
    assert statefulset.reconcile(NS, "web") is None
    assert names(sts) == ["web-0"]

    pod = pod_named("web-0")
    assert pod is not None
    [revision] = revisions_of(sts)
    assert pod["metadata"]["labels"] == {
        "app": "web",
        statefulset.POD_NAME_LABEL: "web-0",
        statefulset.POD_INDEX_LABEL: "0",
        # As upstream, a StatefulSet pod's hash label is the whole revision name.
        history.HASH_LABEL: revision["metadata"]["name"],
    }
    assert pod["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
    assert "generateName" not in pod["metadata"]
    assert pod["spec"]["hostname"] == "web-0"
    assert pod["spec"]["subdomain"] == "web"

    make_ready(pod, clock.stamp())
    statefulset.reconcile(NS, "web")
    assert names(sts) == ["web-0", "web-1"]
    make_ready(pod_named("web-1") or {}, clock.stamp())
    statefulset.reconcile(NS, "web")
    make_ready(pod_named("web-2") or {}, clock.stamp())
    assert statefulset.reconcile(NS, "web") is None
    status = get(STATEFULSET, "web")["status"]
    name = revision["metadata"]["name"]
    assert status == {
        "observedGeneration": 1,
        "replicas": 3,
        "readyReplicas": 3,
        "currentReplicas": 3,
        "updatedReplicas": 3,
        "currentRevision": name,
        "updateRevision": name,
        "collisionCount": 0,
        "availableReplicas": 3,
    }
    assert ("Normal", "SuccessfulCreate", "create Pod web-0 in StatefulSet web successful") in (
        events_of(sts)
    )


def test_parallel_creates_every_pod_at_once(ns: str) -> None:
    sts = make_sts("web", 3, podManagementPolicy="Parallel")
    statefulset.reconcile(NS, "web")
    assert names(sts) == ["web-0", "web-1", "web-2"]
    assert get(STATEFULSET, "web")["status"]["replicas"] == 3


def test_ordered_scale_down_removes_the_highest_ordinal_first_one_at_a_time(
    ns: str, clock: Clock
) -> None:
    sts = make_sts("web", 3)
    converge("web", clock)
    update(STATEFULSET, "web", lambda s: s["spec"].update(replicas=1))
    statefulset.reconcile(NS, "web")
    web2 = pod_named("web-2")
    assert web2 is not None and web2["metadata"].get("deletionTimestamp")
    # web-2 is still terminating: web-1 waits for it.
    statefulset.reconcile(NS, "web")
    web1 = pod_named("web-1")
    assert web1 is not None and not web1["metadata"].get("deletionTimestamp")
    finish_terminating()
    statefulset.reconcile(NS, "web")
    finish_terminating()
    assert names(sts) == ["web-0"]
    statefulset.reconcile(NS, "web")
    assert get(STATEFULSET, "web")["status"]["replicas"] == 1
    assert ("Normal", "SuccessfulDelete", "delete Pod web-2 in StatefulSet web successful") in (
        events_of(sts)
    )


def test_ordered_scale_down_waits_while_a_pod_is_unhealthy(ns: str, clock: Clock) -> None:
    sts = make_sts("web", 3)
    converge("web", clock)
    update(POD, "web-0", lambda p: p["status"].update(conditions=[]), "status")
    update(STATEFULSET, "web", lambda s: s["spec"].update(replicas=2))
    statefulset.reconcile(NS, "web")
    assert names(sts) == ["web-0", "web-1", "web-2"]
    make_ready(pod_named("web-0") or {}, clock.stamp())
    statefulset.reconcile(NS, "web")
    finish_terminating()
    assert names(sts) == ["web-0", "web-1"]


def test_rolling_update_replaces_pods_from_the_highest_ordinal_and_rolls_the_revision_over(
    ns: str, clock: Clock
) -> None:
    sts = make_sts("web", 3)
    converge("web", clock)
    old = get(STATEFULSET, "web")["status"]["currentRevision"]
    set_image(STATEFULSET, "web", "nginx:1.26")
    statefulset.reconcile(NS, "web")
    status = get(STATEFULSET, "web")["status"]
    new = status["updateRevision"]
    assert new != old and status["currentRevision"] == old
    web2 = pod_named("web-2")
    assert web2 is not None and web2["metadata"].get("deletionTimestamp")
    assert image_of("web-1") == "nginx:1.25"
    finish_terminating()
    statefulset.reconcile(NS, "web")
    assert image_of("web-2") == "nginx:1.26"
    # web-2 is not ready yet: web-1 is left alone.
    statefulset.reconcile(NS, "web")
    assert not (pod_named("web-1") or {})["metadata"].get("deletionTimestamp")
    converge("web", clock)
    assert [image_of(f"web-{i}") for i in range(3)] == ["nginx:1.26"] * 3
    status = get(STATEFULSET, "web")["status"]
    assert status["currentRevision"] == status["updateRevision"] == new
    assert status["currentReplicas"] == status["updatedReplicas"] == 3
    assert [r["revision"] for r in revisions_of(sts)] == [1, 2]


def test_a_partition_keeps_lower_ordinals_on_the_current_revision(ns: str, clock: Clock) -> None:
    make_sts("web", 3)
    converge("web", clock)
    update(
        STATEFULSET,
        "web",
        lambda s: s["spec"].update(
            updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
        ),
    )
    set_image(STATEFULSET, "web", "nginx:1.26")
    for _ in range(4):
        statefulset.reconcile(NS, "web")
        finish_terminating()
        for i in range(3):
            pod = pod_named(f"web-{i}")
            if pod is not None and not pods.is_ready(pod):
                make_ready(pod, clock.stamp())
    assert [image_of(f"web-{i}") for i in range(3)] == ["nginx:1.25", "nginx:1.25", "nginx:1.26"]
    status = get(STATEFULSET, "web")["status"]
    assert status["updatedReplicas"] == 1 and status["currentReplicas"] == 2
    assert status["currentRevision"] != status["updateRevision"]
    # A deleted pod below the partition comes back on the current revision.
    store.delete(POD, NS, "web-0", grace_period=0)
    statefulset.reconcile(NS, "web")
    assert image_of("web-0") == "nginx:1.25"


def test_on_delete_waits_for_pods_to_be_deleted(ns: str, clock: Clock) -> None:
    make_sts("web", 2, updateStrategy={"type": "OnDelete"})
    converge("web", clock)
    set_image(STATEFULSET, "web", "nginx:1.26")
    statefulset.reconcile(NS, "web")
    assert [image_of("web-0"), image_of("web-1")] == ["nginx:1.25", "nginx:1.25"]
    store.delete(POD, NS, "web-1", grace_period=0)
    statefulset.reconcile(NS, "web")
    assert image_of("web-1") == "nginx:1.26"
    status = get(STATEFULSET, "web")["status"]
    assert status["updatedReplicas"] == 1


def test_max_unavailable_replaces_several_pods_at_once(ns: str, clock: Clock) -> None:
    make_sts(
        "web",
        4,
        updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
    )
    converge("web", clock)
    set_image(STATEFULSET, "web", "nginx:1.26")
    statefulset.reconcile(NS, "web")
    terminating = sorted(
        name
        for name in ("web-0", "web-1", "web-2", "web-3")
        if (pod_named(name) or {})["metadata"].get("deletionTimestamp")
    )
    assert terminating == ["web-2", "web-3"]
    converge("web", clock)
    assert [image_of(f"web-{i}") for i in range(4)] == ["nginx:1.26"] * 4


def test_claims_are_created_before_pods_and_retained_by_default(ns: str, clock: Clock) -> None:
    claim_template = {
        "metadata": {"name": "data", "labels": {"tier": "db"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    make_sts("db", 2, volumeClaimTemplates=[claim_template])
    converge("db", clock)
    claim = get(CLAIM, "data-db-0")
    assert claim["metadata"]["labels"] == {"tier": "db", "app": "db"}
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "ownerReferences" not in claim["metadata"]
    pod = pod_named("db-1")
    assert pod is not None
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}} in pod["spec"][
        "volumes"
    ]
    sts = get(STATEFULSET, "db")
    assert (
        "Normal",
        "SuccessfulCreate",
        "create Claim data-db-0 Pod db-0 in StatefulSet db success",
    ) in (events_of(sts))
    # Scaled down: the pod goes, its claim stays.
    update(STATEFULSET, "db", lambda s: s["spec"].update(replicas=1))
    statefulset.reconcile(NS, "db")
    finish_terminating()
    assert pod_named("db-1") is None
    assert "ownerReferences" not in get(CLAIM, "data-db-1")["metadata"]


def test_retention_policy_delete_sets_owner_references(ns: str, clock: Clock) -> None:
    claim_template = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    sts = make_sts(
        "db",
        2,
        volumeClaimTemplates=[claim_template],
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Delete"},
    )
    converge("db", clock)
    [ref] = get(CLAIM, "data-db-1")["metadata"]["ownerReferences"]
    assert ref["kind"] == "StatefulSet" and ref["uid"] == sts["metadata"]["uid"]
    pod = pod_named("db-1")
    assert pod is not None
    update(STATEFULSET, "db", lambda s: s["spec"].update(replicas=1))
    statefulset.reconcile(NS, "db")
    # Scaled away: the claim now belongs to the pod, so it goes with it.
    [ref] = get(CLAIM, "data-db-1")["metadata"]["ownerReferences"]
    assert ref == {"apiVersion": "v1", "kind": "Pod", "name": "db-1", "uid": pod["metadata"]["uid"]}
    [ref] = get(CLAIM, "data-db-0")["metadata"]["ownerReferences"]
    assert ref["kind"] == "StatefulSet"


def test_revisions_record_a_replace_patch_and_rollback_renumbers(ns: str, clock: Clock) -> None:
    sts = make_sts("web", 1, revisionHistoryLimit=1)
    converge("web", clock)
    [first] = revisions_of(sts)
    assert first["metadata"]["name"] == f"web-{first['metadata']['labels'][history.HASH_LABEL]}"
    assert first["metadata"]["labels"]["app"] == "web"
    template = get(STATEFULSET, "web")["spec"]["template"]
    assert first["data"] == {"spec": {"template": {**template, "$patch": "replace"}}}
    set_image(STATEFULSET, "web", "nginx:1.26")
    converge("web", clock)
    set_image(STATEFULSET, "web", "nginx:1.25")
    converge("web", clock)
    # Back to the first template: its revision is renumbered, not duplicated.
    revisions = revisions_of(sts)
    assert [r["revision"] for r in revisions] == [2, 3]
    assert revisions[-1]["metadata"]["name"] == first["metadata"]["name"]
    set_image(STATEFULSET, "web", "nginx:1.27")
    converge("web", clock)
    # revisionHistoryLimit 1: one old revision beside the live one.
    assert [r["revision"] for r in revisions_of(sts)] == [3, 4]


def test_a_name_collision_bumps_the_collision_count(ns: str, clock: Clock) -> None:
    sts = make_sts("web", 1)
    data = history.patch_data(sts)
    taken = f"web-{history.hash_revision(data, 0)}"
    store.create(
        REVISION, {"metadata": {"name": taken}, "data": {"other": 1}, "revision": 1}, namespace=NS
    )
    assert statefulset.reconcile(NS, "web") == 0.0
    assert get(STATEFULSET, "web")["status"]["collisionCount"] == 1
    statefulset.reconcile(NS, "web")
    [revision] = revisions_of(sts)
    assert revision["metadata"]["name"] == f"web-{history.hash_revision(data, 1)}"


def test_failed_and_deleted_pods_are_replaced(ns: str, clock: Clock) -> None:
    sts = make_sts("web", 2)
    converge("web", clock)
    old_uid = (pod_named("web-0") or {})["metadata"]["uid"]
    update(POD, "web-0", lambda p: p["status"].update(phase="Failed"), "status")
    statefulset.reconcile(NS, "web")
    assert pod_named("web-0") is None
    assert any(reason == "RecreatingFailedPod" for _t, reason, _m in events_of(sts))
    statefulset.reconcile(NS, "web")
    pod = pod_named("web-0")
    assert pod is not None and pod["metadata"]["uid"] != old_uid
    store.delete(POD, NS, "web-1", grace_period=0)
    converge("web", clock)
    assert names(sts) == ["web-0", "web-1"]


def test_it_adopts_matching_orphans_and_repairs_identity_labels(ns: str) -> None:
    store.create(
        POD,
        {
            "metadata": {"name": "web-0", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
        },
        namespace=NS,
    )
    # OnDelete: an adopted pod without a revision label is not replaced by a rollout.
    sts = make_sts("web", 1, podManagementPolicy="Parallel", updateStrategy={"type": "OnDelete"})
    statefulset.reconcile(NS, "web")
    pod = pod_named("web-0")
    assert pod is not None
    assert pods.is_controlled_by(pod, sts)
    assert pod["metadata"]["labels"][statefulset.POD_NAME_LABEL] == "web-0"
    assert pod["metadata"]["labels"][statefulset.POD_INDEX_LABEL] == "0"


def test_min_ready_seconds_delays_availability(ns: str, clock: Clock) -> None:
    make_sts("web", 1, minReadySeconds=30)
    statefulset.reconcile(NS, "web")
    make_ready(pod_named("web-0") or {}, clock.stamp())
    delay = statefulset.reconcile(NS, "web")
    assert delay is not None and 30 <= delay <= 32
    status = get(STATEFULSET, "web")["status"]
    assert status["readyReplicas"] == 1 and status["availableReplicas"] == 0
    clock.advance(31)
    assert statefulset.reconcile(NS, "web") is None
    assert get(STATEFULSET, "web")["status"]["availableReplicas"] == 1


def test_failed_creates_set_a_failure_condition_and_retry(
    ns: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = store.create

    def refuse_pods(kind_: Any, obj: Obj, **kwargs: Any) -> Any:
        if kind_.kind == "Pod":
            raise ApiError(403, "Forbidden", "exceeded quota")
        return real_create(kind_, obj, **kwargs)

    monkeypatch.setattr(store, "create", refuse_pods)
    sts = make_sts("web", 1)
    assert statefulset.reconcile(NS, "web") == statefulset.FAILURE_RETRY_SECONDS
    [condition] = get(STATEFULSET, "web")["status"]["conditions"]
    assert condition["type"] == "ReplicaFailure" and condition["reason"] == "FailedCreate"
    assert any(
        t == "Warning" and r == "FailedCreate" and "create Pod web-0 in StatefulSet web failed" in m
        for t, r, m in events_of(sts)
    )
    monkeypatch.setattr(store, "create", real_create)
    assert statefulset.reconcile(NS, "web") is None
    assert "conditions" not in get(STATEFULSET, "web")["status"]
    assert pod_named("web-0") is not None
