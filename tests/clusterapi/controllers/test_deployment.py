"""The Deployment controller: rollouts, their invariants, rollback, pause, deadlines, history.

Each test plays the whole loop by hand: reconcile the Deployment, reconcile its ReplicaSets,
then act as scheduler and node agent (bind pods and report them Ready, remove terminated
pods), checking the rollout's invariants after every single step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clusterapi.controllers import deployment as controller
from clusterapi.controllers import pods, replicaset
from clusterapi.store.errors import ApiError
from tests.clusterapi.controllers.conftest import (
    DEPLOYMENT,
    NS,
    RS,
    Clock,
    all_pods,
    finish_terminating,
    get,
    make_ready,
    replicasets_of,
    rollout_complete,
    update,
)
from tests.clusterapi.controllers.conftest import deployment as make_deployment

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]
Check = Callable[[], None]


def image_of(pod: Obj) -> str:
    return str(pod["spec"]["containers"][0]["image"])


def deployment_pods(name: str) -> list[Obj]:
    rs_uids = {rs["metadata"]["uid"] for rs in replicasets_of(get(DEPLOYMENT, name))}
    return [p for p in all_pods() if (pods.controller_ref(p) or {}).get("uid") in rs_uids]


def _versions(name: str) -> list[tuple[str, str]]:
    """The resourceVersion of everything a rollout touches: settled when none changes."""
    objects = [get(DEPLOYMENT, name), *replicasets_of(get(DEPLOYMENT, name)), *all_pods()]
    return sorted((o["metadata"]["uid"], o["metadata"]["resourceVersion"]) for o in objects)


def drive(
    name: str,
    clock: Clock,
    *,
    check: Check = lambda: None,
    ready: Callable[[Obj], bool] = lambda pod: True,
    per_step: int = 1,
    rounds: int = 60,
) -> None:
    """Run the loops until the rollout settles, ``per_step`` pods becoming ready a round."""
    for _ in range(rounds):
        before = _versions(name)
        controller.reconcile(NS, name)
        check()
        for rs in sorted(
            replicasets_of(get(DEPLOYMENT, name)), key=lambda r: r["metadata"]["name"]
        ):
            replicaset.reconcile(NS, rs["metadata"]["name"])
            check()
        waiting = [
            p
            for p in deployment_pods(name)
            if pods.is_active(p) and not pods.is_ready(p) and ready(p)
        ]
        for pod in waiting[:per_step]:
            make_ready(pod, clock.stamp())
            check()
        finish_terminating()
        check()
        if _versions(name) == before:
            return
    raise AssertionError("the rollout did not settle")


def rollout(name: str, clock: Clock, **kwargs: Any) -> None:
    drive(name, clock, **kwargs)
    assert rollout_complete(name)


def set_image(name: str, image: str) -> None:
    update(
        DEPLOYMENT,
        name,
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image=image),
    )


def condition(name: str, type_: str) -> Obj:
    found = controller.get_condition(get(DEPLOYMENT, name)["status"], type_)
    assert found is not None, f"no {type_} condition"
    return found


# --- arithmetic -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 4, (1, 1)),
        ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
        ("25%", "25%", 1, (1, 0)),
        ("0%", "1%", 2, (0, 1)),  # both 0 after rounding: one may be unavailable
        (0, 0, 5, (0, 1)),
        (3, "50%", 7, (3, 3)),
    ],
)
def test_fenceposts_round_like_kubernetes(
    surge: object, unavailable: object, desired: int, expected: tuple[int, int]
) -> None:
    assert controller.resolve_fenceposts(surge, unavailable, desired) == expected


def test_template_hash_is_stable_short_and_changes_with_collisions() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}
    first = controller.compute_hash(template)
    assert first == controller.compute_hash(
        {**template, "metadata": {"labels": {"app": "web"}, "annotations": {}}}
    )
    assert 1 <= len(first) <= 10 and set(first) <= set("bcdfg456789")
    labelled = {**template, "metadata": {"labels": {"app": "web", "pod-template-hash": first}}}
    assert controller.compute_hash(labelled) == first
    assert controller.compute_hash(template, 1) != first
    assert controller.compute_hash({**template, "spec": {"containers": [{"name": "d"}]}}) != first


# --- rollouts ---------------------------------------------------------------------------------


def test_a_new_deployment_rolls_out_one_hashed_replicaset(ns: str, clock: Clock) -> None:
    make_deployment("web", 3)
    rollout("web", clock)
    d = get(DEPLOYMENT, "web")
    [rs] = replicasets_of(d)
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
    assert rs["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "1",
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4",
    }
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    status = d["status"]
    assert {
        k: status.get(k)
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    } == {
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert "unavailableReplicas" not in status
    assert status["observedGeneration"] == d["metadata"]["generation"]
    available = condition("web", "Available")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    progressing = condition("web", "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")
    assert progressing["message"] == f'ReplicaSet "web-{pod_hash}" has successfully progressed.'
    assert all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash for p in all_pods())


def test_an_unready_deployment_reports_minimum_replicas_unavailable(ns: str, clock: Clock) -> None:
    make_deployment("web", 4)
    controller.reconcile(NS, "web")
    for rs in replicasets_of(get(DEPLOYMENT, "web")):
        replicaset.reconcile(NS, rs["metadata"]["name"])
    controller.reconcile(NS, "web")
    status = get(DEPLOYMENT, "web")["status"]
    assert status["replicas"] == 4 and status["unavailableReplicas"] == 4
    available = condition("web", "Available")
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
    progressing = condition("web", "Progressing")
    assert progressing["reason"] == "ReplicaSetUpdated"
    assert not rollout_complete("web")


@pytest.mark.parametrize(
    ("replicas", "strategy", "surge", "unavailable"),
    [
        (4, None, 1, 1),
        (10, {"maxSurge": 3, "maxUnavailable": 2}, 3, 2),
        (5, {"maxSurge": 0, "maxUnavailable": 1}, 0, 1),
        (3, {"maxSurge": "50%", "maxUnavailable": 0}, 2, 0),
    ],
)
def test_rolling_update_keeps_availability_and_surge_bounds_at_every_step(
    ns: str, clock: Clock, replicas: int, strategy: Obj | None, surge: int, unavailable: int
) -> None:
    make_deployment(
        "web",
        replicas,
        strategy=None if strategy is None else {"type": "RollingUpdate", "rollingUpdate": strategy},
    )
    rollout("web", clock, per_step=replicas)
    assert len(replicasets_of(get(DEPLOYMENT, "web"))) == 1
    seen_new = []

    def invariants() -> None:
        active = [p for p in deployment_pods("web") if pods.is_active(p)]
        available = [p for p in active if pods.is_ready(p)]
        specs = sum(rs["spec"]["replicas"] for rs in replicasets_of(get(DEPLOYMENT, "web")))
        assert len(available) >= replicas - unavailable, "too few available pods"
        assert len(active) <= replicas + surge, "too many pods"
        assert specs <= replicas + surge, "replica sets sized beyond the surge"
        seen_new.append(sum(image_of(p) == "nginx:1.26" for p in active))

    set_image("web", "nginx:1.26")
    rollout("web", clock, check=invariants)
    active = [p for p in deployment_pods("web") if pods.is_active(p)]
    assert len(active) == replicas and all(image_of(p) == "nginx:1.26" for p in active)
    # The rollout went through intermediate states, not all at once.
    assert len(set(seen_new)) > 2
    old, new = sorted(replicasets_of(get(DEPLOYMENT, "web")), key=controller.revision)
    print("DBG", [(r["spec"]["replicas"], r.get("status")) for r in (old, new)])
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, replicas)
    assert (
        get(DEPLOYMENT, "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        == "2"
    )
    assert condition("web", "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_the_new_replicaset_waits_for_a_scaled_down_one_to_shed_its_pods(
    ns: str, clock: Clock
) -> None:
    """The Deployment may run again between an old ReplicaSet's scale-down and that
    ReplicaSet's own reconcile: the pods it still has count against maxSurge."""
    make_deployment("web", 4)
    rollout("web", clock, per_step=4)
    set_image("web", "nginx:1.26")
    controller.reconcile(NS, "web")
    old, new = sorted(replicasets_of(get(DEPLOYMENT, "web")), key=controller.revision)
    for _ in range(8):
        controller.reconcile(NS, "web")
        controller.reconcile(NS, "web")  # again, before the old ReplicaSet's reconcile
        replicaset.reconcile(NS, new["metadata"]["name"])
        assert len([p for p in deployment_pods("web") if pods.is_active(p)]) <= 4 + 1
        replicaset.reconcile(NS, old["metadata"]["name"])
        for pod in deployment_pods("web"):
            if pods.is_active(pod) and not pods.is_ready(pod):
                make_ready(pod, clock.stamp())
        finish_terminating()
    rollout("web", clock)
    assert (
        sorted(image_of(p) for p in deployment_pods("web") if pods.is_active(p))
        == ["nginx:1.26"] * 4
    )


def test_recreate_removes_every_old_pod_before_creating_new_ones(ns: str, clock: Clock) -> None:
    make_deployment("web", 3, strategy={"type": "Recreate"})
    rollout("web", clock, per_step=3)

    def never_mixed() -> None:
        images = {image_of(p) for p in deployment_pods("web")}  # terminating pods included
        assert images != {"nginx:1.25", "nginx:1.26"}, "old and new pods side by side"

    set_image("web", "nginx:1.26")
    rollout("web", clock, check=never_mixed)
    assert {image_of(p) for p in deployment_pods("web")} == {"nginx:1.26"}
    assert len(deployment_pods("web")) == 3
    # Recreate tolerates no unavailable pods: Available only with all three.
    assert condition("web", "Available")["status"] == "True"


def test_rollback_reuses_the_old_replicaset_with_a_new_revision(ns: str, clock: Clock) -> None:
    make_deployment("web", 2)
    rollout("web", clock, per_step=2)
    [first] = replicasets_of(get(DEPLOYMENT, "web"))
    set_image("web", "nginx:1.26")
    rollout("web", clock, per_step=2)
    # What `kubectl rollout undo` does: copy the old ReplicaSet's template back (without
    # its pod-template-hash label).
    old_template = first["spec"]["template"]
    old_template["metadata"]["labels"].pop("pod-template-hash")
    update(DEPLOYMENT, "web", lambda d: d["spec"].update(template=old_template))
    rollout("web", clock, per_step=2)
    replicasets = replicasets_of(get(DEPLOYMENT, "web"))
    assert len(replicasets) == 2, "the rollback made a new ReplicaSet"
    reused = next(rs for rs in replicasets if rs["metadata"]["uid"] == first["metadata"]["uid"])
    annotations = reused["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "3"
    assert annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert reused["spec"]["replicas"] == 2
    assert (
        get(DEPLOYMENT, "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        == "3"
    )
    assert {image_of(p) for p in deployment_pods("web")} == {"nginx:1.25"}


def test_rollout_restart_makes_a_new_replicaset(ns: str, clock: Clock) -> None:
    make_deployment("web", 2)
    rollout("web", clock, per_step=2)
    before = {p["metadata"]["uid"] for p in deployment_pods("web")}
    stamp = "2030-01-01T00:00:00Z"
    update(
        DEPLOYMENT,
        "web",
        lambda d: (
            d["spec"]["template"]["metadata"]
            .setdefault("annotations", {})
            .update({"kubectl.kubernetes.io/restartedAt": stamp})
        ),
    )
    rollout("web", clock, per_step=2)
    assert len(replicasets_of(get(DEPLOYMENT, "web"))) == 2
    after = deployment_pods("web")
    assert before.isdisjoint(p["metadata"]["uid"] for p in after)
    assert all(
        p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == stamp for p in after
    )


def test_a_paused_deployment_scales_but_does_not_roll_out_until_resumed(
    ns: str, clock: Clock
) -> None:
    make_deployment("web", 2)
    rollout("web", clock, per_step=2)
    update(DEPLOYMENT, "web", lambda d: d["spec"].update(paused=True))
    set_image("web", "nginx:1.26")
    update(DEPLOYMENT, "web", lambda d: d["spec"].update(replicas=3))
    drive("web", clock, per_step=3)
    [rs] = replicasets_of(get(DEPLOYMENT, "web"))
    assert rs["spec"]["replicas"] == 3
    assert {image_of(p) for p in deployment_pods("web")} == {"nginx:1.25"}
    progressing = condition("web", "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")
    # A pause lasting longer than the deadline is not a lack of progress.
    clock.advance(3600)
    update(DEPLOYMENT, "web", lambda d: d["spec"].update(paused=False))
    controller.reconcile(NS, "web")
    assert len(replicasets_of(get(DEPLOYMENT, "web"))) == 2
    rollout("web", clock, per_step=3)
    assert {image_of(p) for p in deployment_pods("web")} == {"nginx:1.26"}


def test_a_stalled_rollout_exceeds_its_progress_deadline(ns: str, clock: Clock) -> None:
    make_deployment("web", 2, progressDeadlineSeconds=30)
    rollout("web", clock, per_step=2)
    set_image("web", "nginx:broken")
    drive("web", clock, ready=lambda pod: image_of(pod) != "nginx:broken")
    assert condition("web", "Progressing")["reason"] == "ReplicaSetUpdated"
    # No progress: the controller asks to be woken when the deadline passes.
    again = controller.reconcile(NS, "web")
    assert again is not None and 25 <= again <= 30
    clock.advance(31)
    controller.reconcile(NS, "web")
    progressing = condition("web", "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    new_rs = max(replicasets_of(get(DEPLOYMENT, "web")), key=controller.revision)
    assert (
        progressing["message"]
        == f'ReplicaSet "{new_rs["metadata"]["name"]}" has timed out progressing.'
    )
    with pytest.raises(AssertionError, match="exceeded its progress deadline"):
        rollout_complete("web")
    # The old pods keep serving: one may be unavailable, never more.
    assert sum(pods.is_ready(p) for p in deployment_pods("web") if pods.is_active(p)) >= 1


def test_revision_history_limit_removes_the_oldest_empty_replicasets(ns: str, clock: Clock) -> None:
    make_deployment("web", 1, revisionHistoryLimit=1)
    for image in ("nginx:1.25", "nginx:1.26", "nginx:1.27", "nginx:1.28"):
        set_image("web", image)
        rollout("web", clock)
    replicasets = replicasets_of(get(DEPLOYMENT, "web"))
    assert sorted(controller.revision(rs) for rs in replicasets) == [3, 4]


def test_scaling_mid_rollout_spreads_replicas_in_proportion(ns: str, clock: Clock) -> None:
    # The example of the Kubernetes documentation: 10 replicas, maxSurge 3, maxUnavailable 2,
    # a new image that never becomes ready, then a scale to 15.
    make_deployment(
        "web",
        10,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}},
    )
    rollout("web", clock, per_step=10)
    set_image("web", "nginx:broken")
    drive("web", clock, ready=lambda pod: image_of(pod) != "nginx:broken")
    old, new = sorted(replicasets_of(get(DEPLOYMENT, "web")), key=controller.revision)
    print("DBG", [(r["spec"]["replicas"], r.get("status")) for r in (old, new)])
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (8, 5)
    update(DEPLOYMENT, "web", lambda d: d["spec"].update(replicas=15))
    controller.reconcile(NS, "web")
    old, new = sorted(replicasets_of(get(DEPLOYMENT, "web")), key=controller.revision)
    print("DBG", [(r["spec"]["replicas"], r.get("status")) for r in (old, new)])
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (11, 7)
    for rs in (old, new):
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "15"
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "18"


def test_scaling_a_settled_deployment_resizes_its_replicaset(ns: str, clock: Clock) -> None:
    make_deployment("web", 2)
    rollout("web", clock, per_step=2)
    update(DEPLOYMENT, "web", lambda d: d["spec"].update(replicas=0))
    rollout("web", clock)
    assert [p for p in deployment_pods("web") if pods.is_active(p)] == []
    update(DEPLOYMENT, "web", lambda d: d["spec"].update(replicas=3))
    rollout("web", clock, per_step=3)
    [rs] = replicasets_of(get(DEPLOYMENT, "web"))
    assert rs["spec"]["replicas"] == 3
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"


def test_replica_failures_of_the_replicaset_surface_on_the_deployment(
    ns: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(template: Obj, owner: Obj, *, field_manager: str) -> Obj:
        raise ApiError(403, "Forbidden", 'pods "web-x" is forbidden: exceeded quota')

    monkeypatch.setattr(pods, "create_pod", refuse)
    make_deployment("web", 2)
    controller.reconcile(NS, "web")
    [rs] = replicasets_of(get(DEPLOYMENT, "web"))
    replicaset.reconcile(NS, rs["metadata"]["name"])
    controller.reconcile(NS, "web")
    failure = condition("web", "ReplicaFailure")
    assert (failure["status"], failure["reason"]) == ("True", "FailedCreate")
    assert "exceeded quota" in failure["message"]


def test_it_adopts_a_matching_orphan_replicaset(ns: str, clock: Clock) -> None:
    orphan = {
        "metadata": {"name": "web-legacy", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.0"}]},
            },
        },
    }
    from clusterapi import store

    store.create(RS, orphan, namespace=NS)
    d = make_deployment("web", 1)
    assert controller.CONTROLLER.keys_for("ReplicaSet", get(RS, "web-legacy")) == [(NS, "web")]
    controller.reconcile(NS, "web")
    legacy = get(RS, "web-legacy")
    assert pods.is_controlled_by(legacy, d)
    # An old template: the adopted ReplicaSet is drained by the rollout.
    rollout("web", clock)
    assert get(RS, "web-legacy")["spec"]["replicas"] == 0


def test_a_hash_collision_bumps_the_collision_count_and_renames(ns: str, clock: Clock) -> None:
    d = make_deployment("web", 1)
    squatter_name = f"web-{controller.compute_hash(d['spec']['template'])}"
    from clusterapi import store

    store.create(
        RS,
        {
            "metadata": {"name": squatter_name, "labels": {"app": "other"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "other"}},
                "template": {
                    "metadata": {"labels": {"app": "other"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
                },
            },
        },
        namespace=NS,
    )
    controller.reconcile(NS, "web")
    assert get(DEPLOYMENT, "web")["status"]["collisionCount"] == 1
    rollout("web", clock)
    [rs] = replicasets_of(get(DEPLOYMENT, "web"))
    assert rs["metadata"]["name"] == f"web-{controller.compute_hash(d['spec']['template'], 1)}"
    assert rs["metadata"]["name"] != squatter_name
