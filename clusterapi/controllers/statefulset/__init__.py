"""The StatefulSet controller: pods with stable ordinal identities, storage and ordered rollouts.

Role
----
A StatefulSet of ``replicas`` N owns pods named ``<set>-<i>`` for ordinals ``start..start+N-1``
(``spec.ordinals.start``, default 0). Each pod carries its identity (labels
``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index``, ``hostname`` and
``subdomain`` = ``serviceName``), its revision (``controller-revision-hash``) and, for every
``volumeClaimTemplates`` entry, a volume bound to the claim ``<template>-<set>-<i>``, which is
created before the pod and outlives it unless ``persistentVolumeClaimRetentionPolicy`` says
``Delete`` (then the claim gets an ownerReference to the set or, once scaled away, to the pod,
and the garbage collector removes it with its owner).

Flow of one reconcile (upstream ``pkg/controller/statefulset``: ``updateStatefulSet``)
----------------------------------------------------------------------------------
1. Read the set; claim pods matching the selector whose names are ``<set>-<ordinal>``.
2. Revisions (``history``): find or create the ControllerRevision of the current template (the
   *update* revision); the *current* revision is the one the status names.
3. Split pods into *replicas* (ordinals in range, some missing) and *condemned* (out of range,
   highest ordinal first). Being deleted → status only.
4. Replicas, lowest ordinal first: a Failed or Succeeded pod is deleted (recreated next round);
   a missing pod is created (its claims first) from the current revision below the partition,
   from the update revision otherwise. ``OrderedReady`` stops at the first pod it creates, or
   that is not yet Running, Ready and available; ``Parallel`` goes on. A pod whose identity
   labels were stripped is repaired.
5. Condemned, highest ordinal first: deleted (``OrderedReady``: one at a time, only while every
   other pod is healthy).
6. ``RollingUpdate``: the highest-ordinal pod at or above ``partition`` not on the update
   revision is deleted (it comes back on the new revision in step 4), one at a time waiting for
   health; with ``maxUnavailable``, up to that many at once. ``OnDelete``: nothing.
7. Status through the status subresource; when every pod is updated and ready the update
   revision becomes current. Old revisions beyond ``revisionHistoryLimit`` are deleted.

Each step re-reads what it needs and writes by compare-and-swap, so a second concurrent run
finds the pod already there (AlreadyExists) and simply stops; the next run converges.

Modules: ``identity`` (names, labels, volumes, claims and their retention), ``sync`` (steps 4
to 6 and the status), and this one (the entry point and wake-ups).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from clusterapi import store
from clusterapi.controllers import history, pods
from clusterapi.controllers.base import Controller, Key, Obj, write_status
from clusterapi.controllers.statefulset.identity import (
    COMPONENT,
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    claim_kind,
    claim_name,
    new_claim,
    new_pod,
    ordinal_of,
    pod_revision,
    statefulset_kind,
)
from clusterapi.controllers.statefulset.sync import Sync
from clusterapi.core.selectors import LabelSelector, SelectorError, from_label_selector
from clusterapi.store.errors import ApiError

__all__ = [
    "COMPONENT",
    "CONTROLLER",
    "FAILURE_RETRY_SECONDS",
    "POD_INDEX_LABEL",
    "POD_NAME_LABEL",
    "claim_name",
    "new_claim",
    "new_pod",
    "reconcile",
]

logger = logging.getLogger(__name__)

# How soon a reconcile whose writes failed, or that waits on a stale claim, looks again.
FAILURE_RETRY_SECONDS = 5.0


def _write_status(sts: Obj, status: Obj) -> None:
    write_status(statefulset_kind(), sts, status, field_manager=COMPONENT)


def _selector(sts: Obj) -> LabelSelector:
    return from_label_selector((sts.get("spec") or {}).get("selector"))


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one StatefulSet (see the module docstring)."""
    try:
        sts = store.get(statefulset_kind(), namespace, name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    try:
        selector = _selector(sts)
    except SelectorError as exc:
        logger.warning("StatefulSet %s/%s: invalid selector: %s", namespace, name, exc)
        return None

    def member(pod: Obj) -> bool:
        return selector.matches(pod["metadata"].get("labels")) and ordinal_of(name, pod) is not None

    pod_kind = pods.pod_kind()
    candidates = store.list_objects(pod_kind, namespace).objects()
    owned = pods.claim(sts, candidates, pod_kind, selector, field_manager=COMPONENT, match=member)
    current_name = str((sts.get("status") or {}).get("currentRevision") or "")
    try:
        revisions = history.sync_revisions(sts, selector, current_name, field_manager=COMPONENT)
    except history.CollisionError:
        # The collision count was bumped (a write that wakes us too); hash again at once.
        return 0.0
    work = Sync(sts, revisions, pods.utcnow())
    replicas = int(work.spec.get("replicas", 1) or 0)
    by_ordinal: dict[int, Obj] = {}
    for pod in owned:
        ordinal = ordinal_of(name, pod)
        assert ordinal is not None
        if work.start <= ordinal < work.start + replicas:
            # Two pods cannot share a name, so an ordinal has at most one pod.
            by_ordinal[ordinal] = pod
        else:
            work.condemned.append(pod)
    work.replicas = [by_ordinal.get(work.start + i) for i in range(replicas)]
    work.condemned.sort(key=lambda p: -(ordinal_of(name, p) or 0))
    if work.spec.get("volumeClaimTemplates"):
        work.claims = {
            c["metadata"]["name"]: c for c in store.list_objects(claim_kind(), namespace).objects()
        }
    if not sts["metadata"].get("deletionTimestamp"):
        work.run()
    status = work.status()
    _write_status(sts, status)
    live = {status["currentRevision"], status["updateRevision"]}
    live.update(pod_revision(p) for p in [*work.replicas, *work.condemned] if p is not None)
    history.truncate(revisions.all, live, history.history_limit(sts))
    if work.failure is not None or work.waiting:
        return FAILURE_RETRY_SECONDS
    return pods.available_in(
        [p for p in [*work.replicas, *work.condemned] if p is not None], work.min_ready, work.now
    )


def pod_owners(pod: Obj) -> Iterable[Key]:
    """The keys a pod's change wakes: its StatefulSet, or for an orphan every match."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    ref = pods.controller_ref(pod)
    if ref is not None:
        if ref.get("kind") == "StatefulSet":
            yield (namespace, str(ref.get("name", "")))
        return
    if meta.get("deletionTimestamp") or not namespace:
        return
    for sts in store.list_objects(statefulset_kind(), namespace).objects():
        try:
            if _selector(sts).matches(meta.get("labels")):
                yield (namespace, sts["metadata"]["name"])
        except SelectorError:
            continue


CONTROLLER = Controller(
    name="statefulset",
    kind="StatefulSet",
    reconcile=reconcile,
    watches={"Pod": pod_owners},
)
