"""The DaemonSet controller: one pod on every eligible node.

Role
----
A DaemonSet wants one pod per node that its template may run on (upstream
``pkg/controller/daemon``). Eligibility (``node_should_run``) is the scheduler's own filters
for a pod that carries the DaemonSet's automatic tolerations: the template's ``nodeName``,
``nodeSelector`` and required node affinity must match, and every ``NoSchedule``/``NoExecute``
taint must be tolerated. A node whose only untolerated taints are ``NoSchedule`` keeps a pod it
already runs (should *continue* running) but gets no new one. Pods are not bound here: each
is created with required node affinity ``matchFields metadata.name In [node]`` and the default
scheduler binds it, so resources, ports and preemption are checked as for any pod.

Flow of one reconcile (``syncDaemonSet``)
-----------------------------------------
1. Read the DaemonSet, every Node, and the namespace's pods; claim pods by selector.
2. Revisions (``history``): the ControllerRevision of the current template, whose hash goes
   on new pods as ``controller-revision-hash``.
3. Group pods by target node (``spec.nodeName``, else the node named by the injected affinity).
4. Manage (unless being deleted): create a pod on each eligible node without one; on nodes
   that should keep theirs, delete Failed pods (with a per-node back-off, since the kubelet may
   keep rejecting them) and Succeeded ones, and reduce duplicates to the oldest; delete every
   pod on nodes that are no longer eligible, and force-delete pods whose node is gone.
5. ``RollingUpdate``: with ``maxSurge`` 0, delete old-revision pods while fewer than
   ``maxUnavailable`` pods are unavailable (unavailable old pods first), and step 4 recreates
   them; with ``maxSurge``, create the new pod beside the old one and delete the old pod once
   the new one is available. ``OnDelete``: pods change only when deleted.
6. Status through the status subresource (current/misscheduled/desired/ready/updated/
   available/unavailable counts) and history truncated to ``revisionHistoryLimit``.

Wake-ups: a DaemonSet's own changes, its pods' changes, and every Node change (a node joining,
leaving, or changing labels or taints may change every DaemonSet's plan).

Modules: ``placement`` (automatic tolerations, node eligibility, pinning a pod to its node,
the failed-pod back-off), ``sync`` (one reconcile's manage, rolling update and status), and
this one (the entry point and wake-ups).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from clusterapi import store
from clusterapi.controllers import events, history, pods
from clusterapi.controllers.base import Controller, Key, Obj, write_status
from clusterapi.controllers.daemonset.placement import (
    AUTO_TOLERATIONS,
    COMPONENT,
    daemonset_kind,
    node_kind,
    target_node,
)
from clusterapi.controllers.daemonset.sync import Sync
from clusterapi.controllers.deployment import int_or_percent
from clusterapi.core.selectors import LabelSelector, SelectorError, from_label_selector
from clusterapi.store.errors import ApiError

__all__ = ["AUTO_TOLERATIONS", "COMPONENT", "CONTROLLER", "FAILURE_RETRY_SECONDS", "reconcile"]

logger = logging.getLogger(__name__)

FAILURE_RETRY_SECONDS = 5.0


def _write_status(ds: Obj, status: Obj) -> None:
    write_status(daemonset_kind(), ds, status, field_manager=COMPONENT)


def _selector(ds: Obj) -> LabelSelector:
    return from_label_selector((ds.get("spec") or {}).get("selector"))


def _rolling_limits(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) scaled to the desired count, rounding up (never both 0)."""
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = int_or_percent(rolling.get("maxSurge", 0), desired, round_up=True)
    unavailable = int_or_percent(rolling.get("maxUnavailable", 1), desired, round_up=True)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one DaemonSet (see the module docstring)."""
    try:
        ds = store.get(daemonset_kind(), namespace, name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    try:
        selector = _selector(ds)
    except SelectorError as exc:
        logger.warning("DaemonSet %s/%s: invalid selector: %s", namespace, name, exc)
        return None
    if selector.empty:
        message = "This daemon set is selecting all pods. A non-empty selector is required."
        events.record(ds, events.WARNING, "SelectingAll", message, component=COMPONENT)
        return None
    pod_kind = pods.pod_kind()
    candidates = store.list_objects(pod_kind, namespace).objects()
    owned = pods.claim(ds, candidates, pod_kind, selector, field_manager=COMPONENT)
    try:
        revisions = history.sync_revisions(ds, selector, "", field_manager=COMPONENT)
    except history.CollisionError:
        return 0.0
    nodes = {n["metadata"]["name"]: n for n in store.list_objects(node_kind()).objects()}
    node_pods: dict[str, list[Obj]] = {}
    for pod in owned:
        if pods.phase(pod) in pods.TERMINAL_PHASES and pod["metadata"].get("deletionTimestamp"):
            continue  # going already; nothing left to do with it
        node_pods.setdefault(target_node(pod), []).append(pod)
    update_hash = revisions.update["metadata"]["labels"][history.HASH_LABEL]
    work = Sync(ds, nodes, node_pods, update_hash, pods.utcnow())
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    desired = sum(1 for node_name in nodes if work.plan(node_name)[0])
    max_surge, max_unavailable = _rolling_limits(ds, desired)
    if not ds["metadata"].get("deletionTimestamp"):
        work.manage(surge=rolling and max_surge > 0)
        if rolling and work.failure is None:
            work.rolling_update(max_surge, max_unavailable)
    _write_status(ds, work.status(revisions.collision_count))
    live = {revisions.update["metadata"]["name"]}
    hashes = {
        (p["metadata"].get("labels") or {}).get(history.HASH_LABEL)
        for node_pods_ in work.node_pods.values()
        for p in node_pods_
    }
    live.update(
        r["metadata"]["name"]
        for r in revisions.all
        if (r["metadata"].get("labels") or {}).get(history.HASH_LABEL) in hashes
    )
    history.truncate(revisions.all, live, history.history_limit(ds))
    if work.failure is not None:
        work.later(FAILURE_RETRY_SECONDS)
    all_pods = [p for node_pods_ in work.node_pods.values() for p in node_pods_]
    soon = pods.available_in(all_pods, work.min_ready, work.now)
    if soon is not None:
        work.later(soon)
    return work.wait


def pod_owners(pod: Obj) -> Iterable[Key]:
    """The keys a pod's change wakes: its DaemonSet, or for an orphan every match."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    ref = pods.controller_ref(pod)
    if ref is not None:
        if ref.get("kind") == "DaemonSet":
            yield (namespace, str(ref.get("name", "")))
        return
    if meta.get("deletionTimestamp") or not namespace:
        return
    for ds in store.list_objects(daemonset_kind(), namespace).objects():
        try:
            if _selector(ds).matches(meta.get("labels")):
                yield (namespace, ds["metadata"]["name"])
        except SelectorError:
            continue


def every_daemonset(node: Obj) -> Iterable[Key]:
    """A Node change may change any DaemonSet's plan: wake them all."""
    for ds in store.list_objects(daemonset_kind()).objects():
        yield (str(ds["metadata"]["namespace"]), str(ds["metadata"]["name"]))


CONTROLLER = Controller(
    name="daemonset",
    kind="DaemonSet",
    reconcile=reconcile,
    watches={"Pod": pod_owners, "Node": every_daemonset},
)
