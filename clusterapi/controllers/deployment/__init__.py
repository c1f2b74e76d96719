"""The Deployment controller: declarative rollouts through one ReplicaSet per pod template.

Role
----
A Deployment owns ReplicaSets, one per distinct pod template: the **new** ReplicaSet carries
the current template (plus a ``pod-template-hash`` label and selector term, and is named
``<deployment>-<hash>``); every other one is **old**. The controller only ever changes
ReplicaSets' ``spec.replicas`` and annotations; the ReplicaSet controller turns that into pods,
and the ReplicaSets' status flows back into the Deployment's status.

Flow of one reconcile (upstream ``pkg/controller/deployment``: ``syncDeployment``)
-------------------------------------------------------------------------------
1. Read the Deployment; claim the namespace's ReplicaSets by selector (adopt orphans, release
   those that stopped matching).
2. Being deleted → only refresh the status. Then record pause/resume in the Progressing
   condition.
3. Paused, or a **scaling event** (an active ReplicaSet's ``desired-replicas`` annotation no
   longer equals ``spec.replicas``) → ``_sync``: spread the new size over the ReplicaSets in
   proportion to their size (``_scale``), clean up history when paused, refresh status.
4. Otherwise roll out by strategy:
   * **RollingUpdate**: create the new ReplicaSet if missing; scale it up as far as
     ``replicas + maxSurge`` allows; scale old ones down as far as
     ``replicas - maxUnavailable`` available pods allow (unhealthy old replicas first);
   * **Recreate**: scale every old ReplicaSet to zero, wait until none of their pods runs,
     then create and scale up the new one.
5. Status (``_sync_rollout_status``): counts summed over the ReplicaSets, the Available
   condition (at least ``replicas - maxUnavailable`` available), the Progressing condition
   (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
   ProgressDeadlineExceeded) and ReplicaFailure copied from the ReplicaSets. A rollout that is
   neither complete nor timed out asks to be looked at again when its deadline passes.

Revisions: every new ReplicaSet gets ``deployment.kubernetes.io/revision`` = highest old
revision + 1; a ReplicaSet that becomes new again (``kubectl rollout undo`` patches the old
template back, ``rollout restart`` changes a template annotation) gets a fresh revision and
remembers its earlier ones in ``revision-history``. The Deployment carries the new
ReplicaSet's revision. ``revisionHistoryLimit`` bounds how many old, empty ReplicaSets stay.

Writes go through the store only: ReplicaSets by compare-and-swap, the Deployment's status
through the status subresource and its revision annotation through the main resource (the
status subresource changes status only, where upstream's also takes annotations).

Wake-ups: a Deployment's own changes, and (``watches``) every change of a ReplicaSet it
controls, or of an orphan ReplicaSet its selector matches. Pods are not watched: their
changes reach the Deployment through their ReplicaSet's status (Recreate waits for old pods
to be gone by watching ``replicas`` and ``terminatingReplicas`` drop to zero there).

Modules
-------
The steps of one reconcile are methods of one object, ``_Rollout``, built in layers so that
each module imports only the ones below it (no cycles):

* ``util``: names, accessors, maxSurge/maxUnavailable and the sizing rules (pure functions);
* ``state``: ``RolloutState``, the objects as read and the updates every step writes through;
* ``progress``: conditions and the status (step 5);
* ``revisions``: the new ReplicaSet, its creation, revisions and history cleanup;
* ``rolling``: scaling, proportional resizes (step 3) and the RollingUpdate strategy;
* ``recreate``: the Recreate strategy;
* this module: ``reconcile`` (steps 1 and 2, the choice of step 3 or 4), the wake-up mapper
  and ``CONTROLLER``. Names other modules import from ``clusterapi.controllers.deployment``
  are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from clusterapi import store
from clusterapi.controllers import events, pods
from clusterapi.controllers.base import Controller, Key, Obj
from clusterapi.controllers.deployment.progress import get_condition
from clusterapi.controllers.deployment.recreate import RecreateSteps
from clusterapi.controllers.deployment.revisions import compute_hash
from clusterapi.controllers.deployment.util import (
    COMPONENT,
    _count,
    _spec,
    deployment_kind,
    int_or_percent,
    replicaset_kind,
    resolve_fenceposts,
    revision,
)
from clusterapi.core.selectors import LabelSelector, SelectorError, from_label_selector
from clusterapi.store.errors import ApiError

__all__ = [
    "CONTROLLER",
    "compute_hash",
    "get_condition",
    "int_or_percent",
    "reconcile",
    "replicaset_owners",
    "resolve_fenceposts",
    "revision",
]

logger = logging.getLogger(__name__)


class _Rollout(RecreateSteps):
    """The state and steps of one reconcile of one Deployment (all layers together)."""


# --- the reconcile ----------------------------------------------------------------------------


def _selector(deployment: Obj) -> LabelSelector:
    return from_label_selector(_spec(deployment).get("selector"))


def _claim_replicasets(deployment: Obj, selector: LabelSelector) -> list[Obj]:
    """The namespace's ReplicaSets this Deployment controls, after adopting and releasing."""
    kind = replicaset_kind()
    candidates = store.list_objects(kind, deployment["metadata"]["namespace"]).objects()
    return pods.claim(deployment, candidates, kind, selector, field_manager=COMPONENT)


def _pod_map(deployment: Obj, rs_list: list[Obj], selector: LabelSelector) -> dict[str, list[Obj]]:
    """The Deployment's pods grouped by the uid of the ReplicaSet controlling them."""
    uids: dict[str, list[Obj]] = {rs["metadata"]["uid"]: [] for rs in rs_list}
    kind = pods.pod_kind()
    for pod in store.list_objects(kind, deployment["metadata"]["namespace"]).objects():
        ref = pods.controller_ref(pod)
        if (
            ref is not None
            and ref.get("uid") in uids
            and selector.matches(pod["metadata"].get("labels"))
        ):
            uids[str(ref["uid"])].append(pod)
    return uids


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one Deployment (see the module docstring); returns when to look again."""
    try:
        deployment = store.get(deployment_kind(), namespace, name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    now = pods.utcnow()
    raw_selector = _spec(deployment).get("selector")
    if isinstance(raw_selector, dict) and not (
        raw_selector.get("matchLabels") or raw_selector.get("matchExpressions")
    ):
        # An empty selector would select every pod of the namespace: refuse to act on it.
        events.record(
            deployment,
            events.WARNING,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
            component=COMPONENT,
        )
        rollout = _Rollout(deployment, [], now)
        generation = int(deployment["metadata"].get("generation") or 0)
        if _count(deployment, "observedGeneration") < generation:
            deployment.setdefault("status", {})["observedGeneration"] = generation
            rollout._write_deployment(status=True)
        return None
    try:
        selector = _selector(deployment)
    except SelectorError as exc:
        logger.warning("deployment %s/%s: invalid selector: %s", namespace, name, exc)
        return None
    rs_list = _claim_replicasets(deployment, selector)
    rollout = _Rollout(deployment, rs_list, now)
    if deployment["metadata"].get("deletionTimestamp"):
        new_rs, old = rollout.all_rss(create=False)
        rollout.sync_status([*old, new_rs] if new_rs is not None else old, new_rs)
        return None
    rollout.check_paused_conditions()
    if _spec(deployment).get("paused") or rollout.is_scaling_event():
        rollout.sync()
        return rollout.requeue
    strategy = (_spec(deployment).get("strategy") or {}).get("type", "RollingUpdate")
    if strategy == "Recreate":
        rollout.rollout_recreate(_pod_map(deployment, rs_list, selector))
    else:
        rollout.rollout_rolling()
    return rollout.requeue


def replicaset_owners(rs: Obj) -> Iterable[Key]:
    """The Deployments a ReplicaSet's change wakes: its controller, or for an orphan every match."""
    meta = rs.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    ref = pods.controller_ref(rs)
    if ref is not None:
        if ref.get("kind") == "Deployment":
            yield (namespace, str(ref.get("name", "")))
        return
    if meta.get("deletionTimestamp") or not namespace:
        return
    for deployment in store.list_objects(deployment_kind(), namespace).objects():
        try:
            if _selector(deployment).matches(meta.get("labels")):
                yield (namespace, deployment["metadata"]["name"])
        except SelectorError:
            continue


CONTROLLER = Controller(
    name="deployment",
    kind="Deployment",
    reconcile=reconcile,
    watches={"ReplicaSet": replicaset_owners},
)
