"""The garbage collector: background, orphan and foreground deletion, and the full pass."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import deployment, pods, replicaset
from clusterapi.controllers import garbagecollector as gc
from clusterapi.store.errors import ApiError
from tests.clusterapi.controllers.conftest import (
    CONFIGMAP,
    DEPLOYMENT,
    NAMESPACE,
    NS,
    POD,
    RS,
    Clock,
    all_pods,
    finish_terminating,
    get,
    make_ready,
    pods_of,
    replicasets_of,
)
from tests.clusterapi.controllers.conftest import deployment as make_deployment
from tests.clusterapi.controllers.conftest import replicaset as make_rs

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]


def exists(kind: Any, name: str) -> bool:
    try:
        get(kind, name)
    except ApiError as exc:
        assert exc.reason == "NotFound"
        return False
    return True


def ref(owner: Obj, **extra: Any) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        **extra,
    }


def configmap(name: str, *owners: Obj) -> Obj:
    meta: Obj = {"name": name}
    if owners:
        meta["ownerReferences"] = list(owners)
    return store.create(CONFIGMAP, {"metadata": meta, "data": {}}, namespace=NS).obj


def collect(kind: Any, name: str) -> float | None:
    """Run the collector for the key a change to that object wakes."""
    return gc.reconcile(*gc.object_key(kind, NS, name))


def test_background_deletion_removes_the_dependents_of_a_deleted_owner(ns: str) -> None:
    rs = make_rs("web", 3)
    replicaset.reconcile(NS, "web")
    assert len(pods_of(rs)) == 3
    unrelated = store.create(
        POD,
        {"metadata": {"name": "solo"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}},
        namespace=NS,
    ).obj
    store.delete(RS, NS, "web")
    assert collect(RS, "web") is None
    assert [p["metadata"]["name"] for p in all_pods()] == [unrelated["metadata"]["name"]]


def test_a_dependent_with_a_live_owner_only_loses_the_dangling_reference(ns: str) -> None:
    first, second = configmap("first"), configmap("second")
    configmap("shared", ref(first), ref(second))
    store.delete(CONFIGMAP, NS, "first")
    collect(CONFIGMAP, "first")
    assert get(CONFIGMAP, "shared")["metadata"]["ownerReferences"] == [ref(second)]


def test_a_reference_to_an_older_owner_of_the_same_name_is_dangling(ns: str) -> None:
    old = configmap("owner")
    configmap("child", ref(old))
    store.delete(CONFIGMAP, NS, "owner")
    configmap("owner")  # same name, new uid
    # The owner key sees a live owner and stops; the namespace's full pass finds the child.
    collect(CONFIGMAP, "owner")
    assert exists(CONFIGMAP, "child")
    gc.reconcile("", NS)
    assert not exists(CONFIGMAP, "child")


def test_orphan_deletion_strips_references_then_lets_the_owner_go(ns: str) -> None:
    rs = make_rs("web", 2)
    replicaset.reconcile(NS, "web")
    store.delete(RS, NS, "web", propagation="Orphan")
    held = get(RS, "web")
    assert held["metadata"]["finalizers"] == ["orphan"]
    # While it waits, the ReplicaSet neither replaces nor releases its pods.
    replicaset.reconcile(NS, "web")
    assert len(pods_of(rs)) == 2
    collect(RS, "web")
    assert not exists(RS, "web")
    survivors = all_pods()
    assert len(survivors) == 2
    assert all("ownerReferences" not in p["metadata"] for p in survivors)


def test_foreground_deletion_removes_dependents_before_the_owner(ns: str, clock: Clock) -> None:
    make_deployment("web", 2)
    deployment.reconcile(NS, "web")
    [rs] = replicasets_of(get(DEPLOYMENT, "web"))
    rs_name = rs["metadata"]["name"]
    replicaset.reconcile(NS, rs_name)
    for pod in pods_of(rs):
        make_ready(pod, clock.stamp())  # bound: deleting it takes a grace period
    store.delete(DEPLOYMENT, NS, "web", propagation="Foreground")

    # The Deployment waits for its ReplicaSet, which is deleted in foreground in turn.
    assert collect(DEPLOYMENT, "web") == gc.WAIT_SECONDS
    assert exists(DEPLOYMENT, "web")
    assert get(RS, rs_name)["metadata"]["finalizers"] == ["foregroundDeletion"]
    # The ReplicaSet waits for its pods, which are terminating on their node.
    assert collect(RS, rs_name) == gc.WAIT_SECONDS
    assert all(p["metadata"].get("deletionTimestamp") for p in all_pods())
    assert all("finalizers" not in p["metadata"] for p in all_pods())
    assert exists(RS, rs_name) and exists(DEPLOYMENT, "web")
    assert collect(DEPLOYMENT, "web") == gc.WAIT_SECONDS

    finish_terminating()
    assert collect(RS, rs_name) is None
    assert not exists(RS, rs_name)
    assert exists(DEPLOYMENT, "web")
    assert collect(DEPLOYMENT, "web") is None
    assert not exists(DEPLOYMENT, "web")


def test_foreground_deletion_does_not_wait_for_non_blocking_dependents(ns: str) -> None:
    owner = configmap("owner")
    configmap("loose", ref(owner, blockOwnerDeletion=False))
    other = configmap("other")
    configmap("kept", ref(owner, blockOwnerDeletion=True), ref(other))
    store.delete(CONFIGMAP, NS, "owner", propagation="Foreground")
    assert collect(CONFIGMAP, "owner") is None
    assert not exists(CONFIGMAP, "owner")
    # The loose dependent is deleted in foreground too (it might own things), without
    # holding up its owner; with nothing of its own to wait for, it goes next.
    assert get(CONFIGMAP, "loose")["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert collect(CONFIGMAP, "loose") is None
    assert not exists(CONFIGMAP, "loose")
    # A dependent with another, live owner survives without the reference.
    assert get(CONFIGMAP, "kept")["metadata"]["ownerReferences"] == [ref(other)]


def test_the_full_pass_collects_dependents_of_missing_owners(ns: str) -> None:
    live = configmap("live")
    configmap("ok", ref(live))
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "0000-gone"}
    configmap("garbage", ghost)
    assert gc.reconcile("", NS) is None
    assert exists(CONFIGMAP, "ok") and not exists(CONFIGMAP, "garbage")


def test_the_full_pass_finishes_owners_held_by_gc_finalizers(ns: str) -> None:
    owner = configmap("owner")
    configmap("child", ref(owner, blockOwnerDeletion=True))
    store.delete(CONFIGMAP, NS, "owner", propagation="Orphan")
    gc.reconcile("", NS)
    assert not exists(CONFIGMAP, "owner")
    assert "ownerReferences" not in get(CONFIGMAP, "child")["metadata"]


def test_owners_of_unknown_kinds_are_never_assumed_gone(ns: str) -> None:
    alien = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "1"}
    configmap("child", alien)
    gc.reconcile("", NS)
    assert exists(CONFIGMAP, "child")


def test_which_changes_wake_which_keys(ns: str, clock: Clock) -> None:
    rs = make_rs("web", 1)
    replicaset.reconcile(NS, "web")
    [pod] = pods_of(rs)
    rs_key = gc.object_key(RS, NS, "web")
    pod_key = gc.object_key(POD, NS, pod["metadata"]["name"])
    # Any change to a (possible) owner wakes its own key.
    assert gc.CONTROLLER.keys_for("ReplicaSet", get(RS, "web")) == [rs_key]
    # A young dependent wakes its owner (which may already be gone) but not itself.
    created = pods.parse_time(pod["metadata"]["creationTimestamp"])
    assert created is not None
    clock.now = created
    assert gc.CONTROLLER.keys_for("Pod", pod) == [rs_key]
    # A settled pod's status updates wake nothing at all.
    clock.advance(gc.YOUNG_SECONDS + 1)
    assert gc.CONTROLLER.keys_for("Pod", pod) == []
    # A pod being deleted wakes itself and the owner that may be waiting for it.
    marked = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": clock.stamp()}}
    assert gc.CONTROLLER.keys_for("Pod", marked) == [pod_key, rs_key]
    # Routine objects that rarely own anything wake nothing; their deletion is left to the
    # full pass unless they are deleted with a finalizer.
    plain = configmap("plain")
    assert gc.CONTROLLER.keys_for("ConfigMap", plain) == []
    marked_cm = {**plain, "metadata": {**plain["metadata"], "deletionTimestamp": clock.stamp()}}
    assert gc.CONTROLLER.keys_for("ConfigMap", marked_cm) == [gc.object_key(CONFIGMAP, NS, "plain")]
    # Namespaces also get the full pass.
    namespace = store.get(NAMESPACE, "", NS)
    assert ("", NS) in gc.CONTROLLER.keys_for("Namespace", namespace)


def test_a_dependent_created_after_its_owner_was_deleted_is_collected(ns: str) -> None:
    rs = make_rs("web", 0)
    store.delete(RS, NS, "web")
    late = pods.create_pod(
        {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x:1"}]},
        },
        rs,
        field_manager="test",
    )
    [key] = gc.CONTROLLER.keys_for("Pod", late)
    assert gc.reconcile(*key) is None
    assert all_pods() == []


def test_nothing_is_scanned_in_a_namespace_being_deleted(
    ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = configmap("owner")
    configmap("child", ref(owner))
    store.delete(CONFIGMAP, NS, "owner")
    namespace_kind = gc.by_kind("v1", "Namespace")
    assert namespace_kind is not None
    store.delete(namespace_kind, "", NS)
    assert get(namespace_kind, NS, "")["metadata"]["deletionTimestamp"]
    # The namespace controller removes everything; a scan per deleted object would be waste.
    monkeypatch.setattr(gc, "_dependents", lambda *a: pytest.fail("scanned"))
    assert collect(CONFIGMAP, "owner") is None
    assert gc.reconcile("", NS) is None
