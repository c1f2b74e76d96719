"""The node lifecycle controller: Lease-based node health, NoExecute taints and eviction.

Role
----
Node agents renew their Lease in ``kube-node-lease`` about every 10 s. This loop (a singleton,
one per cluster, as upstream's ``node-lifecycle-controller``) looks at each Node:

* **health**: the node's last sign of life is the later of its Lease's ``renewTime`` and its
  Ready condition's ``lastHeartbeatTime`` (its creation when it has neither). Once that is
  older than the grace period (``GRACE_SECONDS``: 40 s, ``BERTH_NODE_MONITOR_GRACE_SECONDS``;
  upstream's ``--node-monitor-grace-period``), every condition becomes ``Unknown`` with reason
  ``NodeStatusUnknown`` and message ``Kubelet stopped posting node status.``, as upstream's
  ``tryUpdateNodeHealth``; pods on it get ``Ready=False`` (``MarkPodsNotReady``);
* **taints** (``doNoExecuteTaintingPass``/``taintNodeByCondition``): Ready=Unknown gives
  ``node.kubernetes.io/unreachable`` and Ready=False ``node.kubernetes.io/not-ready``, each as
  ``NoExecute`` (with ``timeAdded``) and ``NoSchedule``; Ready=True removes them again;
* **eviction** (the taint manager): a pod on a node with a NoExecute taint it does not
  tolerate is deleted at once; one that tolerates it for ``tolerationSeconds`` (300 s by the
  DefaultTolerationSeconds defaults, ``clusterapi.resources.kinds.pod``) is deleted that long
  after the taint's ``timeAdded``; one tolerating it forever stays.

Flow: one periodic pass (``monitor``, the ``MONITOR`` key, every ``MONITOR_SECONDS``: 5 s,
upstream's ``--node-monitor-period``) lists the Nodes and their Leases once and converges only
the nodes that are not healthy and settled, so 1,000 healthy nodes cost two list queries per
period, not a task each. A Node write (an agent's status report, a new node) converges that
node at once. Lease renewals wake nothing (1,000 nodes renew 100 times a second). A node with
a pending eviction keeps one delayed check for the moment its pods' toleration runs out, kept
single by a due-time mark in the cache. Deliberately left out: eviction rate limits and zone
states (``--node-eviction-rate``, ``--unhealthy-zone-threshold``), the startup grace period,
and memory/disk/pid pressure taints.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache

from clusterapi import store
from clusterapi.controllers import events
from clusterapi.controllers.base import Controller
from clusterapi.resources import registered as _kind
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

NAME = "node-lifecycle"
COMPONENT = "node-controller"
LEASE_NAMESPACE = "kube-node-lease"
GRACE_SECONDS = float(os.environ.get("BERTH_NODE_MONITOR_GRACE_SECONDS", "40"))
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
CONDITION_TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
# The periodic pass over every node (upstream's --node-monitor-period, 5 s).
MONITOR_SECONDS = float(os.environ.get("BERTH_NODE_MONITOR_PERIOD_SECONDS", "5"))
# The key of that pass (no Node can be named so).
MONITOR = ("", "~monitor")
# Never look again sooner than this (a node seen just expired re-checks its pods then).
MIN_DELAY = 1.0
# A pending eviction is looked at least this often even when it is far away.
MAX_DELAY = 60.0


def utcnow() -> datetime:
    """The controller's clock (tests replace it)."""
    return datetime.now(UTC)


def _parse(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(node: Obj, type_: str) -> Obj | None:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == type_:
            return condition
    return None


def last_heartbeat(node: Obj, lease: Obj | None) -> datetime:
    """The node's last sign of life: Lease renewal, status heartbeat, or its creation."""
    candidates: list[datetime] = []
    if lease is not None:
        renewed = _parse((lease.get("spec") or {}).get("renewTime"))
        if renewed is not None:
            candidates.append(renewed)
    ready = _condition(node, "Ready")
    if ready is not None:
        beat = _parse(ready.get("lastHeartbeatTime"))
        if beat is not None:
            candidates.append(beat)
    if not candidates:
        created = _parse(node["metadata"].get("creationTimestamp"))
        candidates.append(created or utcnow())
    return max(candidates)


def _mark_unknown(node: Obj, now: datetime) -> Obj:
    """Every condition Unknown (NodeStatusUnknown), as ``tryUpdateNodeHealth``."""
    status = node.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or () if isinstance(c, dict)]
    present = {c.get("type") for c in conditions}
    stamp = _format(now)
    for type_ in CONDITION_TYPES:
        if type_ not in present:
            conditions.append(
                {
                    "type": type_,
                    "status": "Unknown",
                    "reason": UNKNOWN_REASON,
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": _format(last_heartbeat(node, None)),
                    "lastTransitionTime": stamp,
                }
            )
    for condition in conditions:
        if condition.get("status") != "Unknown":
            condition["status"] = "Unknown"
            condition["reason"] = UNKNOWN_REASON
            condition["message"] = UNKNOWN_MESSAGE
            condition["lastTransitionTime"] = stamp
    status["conditions"] = conditions
    return node


def wanted_taints(ready_status: str) -> list[tuple[str, str]]:
    """The (key, effect) taints a node with this Ready status should carry."""
    if ready_status == "Unknown":
        return [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")]
    if ready_status == "False":
        return [(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")]
    return []


def _set_taints(node: Obj, wanted: list[tuple[str, str]], now: datetime) -> Obj:
    spec = node.setdefault("spec", {})
    taints = [t for t in spec.get("taints") or () if isinstance(t, dict)]
    ours = {UNREACHABLE, NOT_READY}
    kept = [t for t in taints if t.get("key") not in ours or (t["key"], t.get("effect")) in wanted]
    have = {(t.get("key"), t.get("effect")) for t in kept}
    for key, effect in wanted:
        if (key, effect) not in have:
            taint: Obj = {"key": key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = _format(now)
            kept.append(taint)
    if kept:
        spec["taints"] = kept
    else:
        spec.pop("taints", None)
    return node


def tolerates(tolerations: Iterable[Obj], taint: Obj) -> Obj | None:
    """The toleration of ``tolerations`` that tolerates ``taint``, or None."""
    for toleration in tolerations:
        if not isinstance(toleration, dict):
            continue
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return toleration
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return toleration
    return None


def eviction_time(pod: Obj, taints: list[Obj]) -> datetime | None:
    """When the NoExecute ``taints`` evict ``pod`` (None: it tolerates them all forever).

    A taint the pod does not tolerate evicts it at once (its ``timeAdded``); otherwise the
    shortest ``tolerationSeconds`` after the taint was added wins, as upstream's taint manager.
    """
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    due: datetime | None = None
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        added = _parse(taint.get("timeAdded")) or utcnow()
        toleration = tolerates(tolerations, taint)
        if toleration is None:
            when = added
        elif toleration.get("tolerationSeconds") is None:
            continue
        else:
            when = added + timedelta(seconds=max(int(toleration["tolerationSeconds"]), 0))
        due = when if due is None or when < due else due
    return due


def _bound(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _pods_on(node_name: str) -> list[Obj]:
    def bound(obj: Obj) -> bool:
        return (obj.get("spec") or {}).get("nodeName") == node_name

    return store.list_objects(_kind("v1", "Pod"), None, match=bound).objects()


def _mark_pods_not_ready(pods: list[Obj], now: datetime) -> None:
    kind = _kind("v1", "Pod")
    for pod in pods:
        ready = _condition(pod, "Ready")
        if ready is None or ready.get("status") == "False":
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue

        def not_ready(obj: Obj) -> Obj:
            for condition in (obj.get("status") or {}).get("conditions") or ():
                if isinstance(condition, dict) and condition.get("type") == "Ready":
                    condition["status"] = "False"
                    condition["reason"] = "NodeNotReady"
                    condition["message"] = ""
                    condition["lastTransitionTime"] = _format(now)
            return obj

        meta = pod["metadata"]
        try:
            store.guaranteed_update(
                kind,
                meta["namespace"],
                meta["name"],
                not_ready,
                subresource="status",
                field_manager=COMPONENT,
            )
        except ApiError as exc:
            if exc.reason != "NotFound":
                raise


def _evict(node: Obj, pods: list[Obj], now: datetime) -> datetime | None:
    """Delete the pods whose tolerations ran out; returns the next eviction due, if any."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or () if isinstance(t, dict)]
    if not any(t.get("effect") == "NoExecute" for t in taints):
        return None
    kind = _kind("v1", "Pod")
    upcoming: datetime | None = None
    for pod in pods:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        due = eviction_time(pod, taints)
        if due is None:
            continue
        if due > now:
            upcoming = due if upcoming is None or due < upcoming else upcoming
            continue
        try:
            store.delete(kind, meta["namespace"], meta["name"], precondition_uid=meta["uid"])
        except ApiError as exc:
            if exc.reason not in ("NotFound", "Conflict"):
                raise
            continue
        events.record(
            pod,
            events.NORMAL,
            "TaintManagerEviction",
            f"Marking for deletion Pod {meta['namespace']}/{meta['name']}",
            component="taint-eviction-controller",
        )
    return upcoming


def _claim_chain(name: str, delay: float) -> bool:
    """Whether this run continues the node's single chain of delayed checks: yes when no
    check is pending, the pending one is due now (it is us), or ours is needed sooner."""
    key = f"berth:nodelifecycle:due:{name}"
    now = utcnow().timestamp()
    due = cache.get(key)
    if due is not None and float(due) > now + 0.5 and now + delay >= float(due) - 0.5:
        return False
    cache.set(key, now + delay, int(delay) + 120)
    return True


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one node (a Node was written), or run the periodic pass over all of them
    (``MONITOR``); returns the delay to the next look."""
    if (namespace, name) == MONITOR:
        monitor()
        return MONITOR_SECONDS
    node_kind = _kind("v1", "Node")
    try:
        node = store.get(node_kind, "", name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    try:
        lease: Obj | None = store.get(
            _kind("coordination.k8s.io/v1", "Lease"), LEASE_NAMESPACE, name
        )
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
        lease = None
    _keep_monitoring()
    return _converge(node, lease, utcnow(), _pods_on)


def monitor() -> int:
    """One pass over every node, as upstream's ``monitorNodeHealth`` every
    ``--node-monitor-period``: two lists (Nodes, Leases), and work only for the nodes that are
    not healthy and settled. Returns how many nodes needed it."""
    nodes = store.list_objects(_kind("v1", "Node")).objects()
    leases = {
        lease["metadata"]["name"]: lease
        for lease in store.list_objects(
            _kind("coordination.k8s.io/v1", "Lease"), LEASE_NAMESPACE
        ).objects()
    }
    now = utcnow()
    by_node: dict[str, list[Obj]] | None = None

    def pods_on(node_name: str) -> list[Obj]:
        # The bound pods are listed once per pass, however many nodes are unhealthy.
        nonlocal by_node
        if by_node is None:
            by_node = {}
            for pod in store.list_objects(_kind("v1", "Pod"), None, match=_bound).objects():
                by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
        return by_node.get(node_name, [])

    acted = 0
    for node in nodes:
        lease = leases.get(node["metadata"]["name"])
        if _settled(node, lease, now):
            continue
        acted += 1
        try:
            _converge(node, lease, now, pods_on)
        except ApiError as exc:  # one node's conflict must not stop the pass
            logger.info("node %s: %s", node["metadata"]["name"], exc)
    return acted


def _settled(node: Obj, lease: Obj | None, now: datetime) -> bool:
    """Healthy (Ready, heard from within the grace period) and without our taints."""
    ready = _condition(node, "Ready")
    if (ready or {}).get("status") != "True":
        return False
    if now >= last_heartbeat(node, lease) + timedelta(seconds=GRACE_SECONDS):
        return False
    return not any(
        isinstance(t, dict) and t.get("key") in (UNREACHABLE, NOT_READY)
        for t in (node.get("spec") or {}).get("taints") or ()
    )


_monitor_asked_at = 0.0


def _keep_monitoring() -> None:
    """Make sure the periodic pass is scheduled (after a fresh start it would otherwise wait
    for the first resync); asked at most once a period per process, and deduplicated by the
    key's single scheduled look (``tasks.enqueue``)."""
    global _monitor_asked_at
    moment = time.monotonic()
    if moment - _monitor_asked_at < MONITOR_SECONDS:
        return
    _monitor_asked_at = moment
    from clusterapi.controllers.tasks import enqueue

    enqueue(CONTROLLER, *MONITOR, delay=MONITOR_SECONDS)


def _converge(
    node: Obj, lease: Obj | None, now: datetime, pods_on: Callable[[str], list[Obj]]
) -> float | None:
    """Health, taints and evictions of one node; the delay to the next eviction, if any."""
    node_kind = _kind("v1", "Node")
    name = node["metadata"]["name"]
    grace = timedelta(seconds=GRACE_SECONDS)
    expires = last_heartbeat(node, lease) + grace
    ready = _condition(node, "Ready")
    ready_status = str((ready or {}).get("status") or "Unknown")
    if now >= expires and ready_status != "Unknown":

        def unknown(obj: Obj) -> Obj:
            return _mark_unknown(obj, now)

        node = store.guaranteed_update(
            node_kind, "", name, unknown, subresource="status", field_manager=COMPONENT
        ).obj
        ready_status = "Unknown"
        events.record(
            node,
            events.NORMAL,
            "NodeNotReady",
            f"Node {name} status is now: NodeNotReady",
            component=COMPONENT,
        )
    wanted = wanted_taints(ready_status)
    current = {
        (t.get("key"), t.get("effect"))
        for t in (node.get("spec") or {}).get("taints") or ()
        if isinstance(t, dict) and t.get("key") in (UNREACHABLE, NOT_READY)
    }
    if current != set(wanted):

        def taint(obj: Obj) -> Obj:
            return _set_taints(obj, wanted, now)

        node = store.guaranteed_update(node_kind, "", name, taint, field_manager=COMPONENT).obj
    pods = pods_on(name) if ready_status != "True" else []
    if pods:
        _mark_pods_not_ready(pods, now)
    next_eviction = _evict(node, pods, now) if pods else None
    # Healthy nodes are watched by the periodic pass; a timer is kept only for the next
    # eviction, when a toleration runs out.
    if next_eviction is None:
        return None
    delay = min(max((next_eviction - now).total_seconds() + 0.1, MIN_DELAY), MAX_DELAY)
    return delay if _claim_chain(name, delay) else None


CONTROLLER = Controller(
    name=NAME,
    kind="Node",
    reconcile=reconcile,
    singleton=True,
    # No per-node resync: the periodic pass looks at every node; the resync keeps it going.
    resync=False,
    resync_keys=lambda: [MONITOR],
)
