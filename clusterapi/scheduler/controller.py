"""The scheduler as a control loop: ``Controller(name="scheduler", kind="Pod")``.

Every committed change to a pod wakes ``reconcile`` for that pod. If the pod is pending for
one of our profiles (unbound, ``spec.schedulerName`` ours, not being deleted, not gated)
and not backing off, the reconcile runs a *batch* over everything pending, so a burst of
pods created together is scheduled by the first task while the rest find their pod bound
and return at once. A pod that stays unschedulable asks to be looked at again when its
backoff allows.

Changes that may make room wake the ``SWEEP`` key instead of a pod: a Node added or changed
(joined, uncordoned, relabelled) and a bound pod that is going away. Sweeps are
deduplicated like any key, so a storm of node updates costs one batch at a time.

The loop is a singleton (only the leader of the ``berth-scheduler`` Lease runs it), so two
schedulers never assume the same free capacity. There is no per-pod periodic resync: it
would enqueue every pod in the cluster each period, while pending pods are already covered
by their own retries and by sweeps, and the resync enqueues one sweep (``resync_keys``) for
pods whose wake-ups were lost with a worker or a broker.
"""

from __future__ import annotations

from collections.abc import Iterable

from clusterapi.controllers.base import Controller, Key, Obj
from clusterapi.scheduler import scheduler
from clusterapi.scheduler.snapshot import DEFAULT_SCHEDULER_NAME


def reconcile(namespace: str, name: str) -> float | None:
    """Schedule; a pod that must wait hands its retry to the one sweep key.

    A timer per backing-off pod would cost a message and a reconcile per pod every few
    seconds (a thousand unschedulable pods: a hundred reconciles a second, all failing the
    same way); one sweep at the earliest due time tries every due pod in one batch, and
    reschedules itself for the next (``Scheduler._next_due``).
    """
    again = scheduler.get().reconcile(namespace, name)
    if again is None or (namespace, name) == scheduler.SWEEP or again <= scheduler.BUSY_SECONDS:
        return again
    from clusterapi.controllers.tasks import enqueue

    enqueue(CONTROLLER, *scheduler.SWEEP, delay=again)
    return None


def _waiting_for_us(obj: Obj) -> bool:
    """Whether a pod's change can concern the scheduler: unbound, ours, not going away.
    Bound pods' changes (every status report of every running pod) need no reconcile."""
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    return (
        not spec.get("nodeName")
        and not meta.get("deletionTimestamp")
        and spec.get("schedulerName", DEFAULT_SCHEDULER_NAME) in scheduler.get().frameworks
    )


def _node_changed(obj: Obj) -> Iterable[Key]:
    yield scheduler.SWEEP


def _pod_leaving(obj: Obj) -> Iterable[Key]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    if spec.get("nodeName") and (
        meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed")
    ):
        yield scheduler.SWEEP


CONTROLLER = Controller(
    name="scheduler",
    kind="Pod",
    reconcile=reconcile,
    watches={"Node": _node_changed, "Pod": _pod_leaving},
    singleton=True,
    resync=False,
    accepts=_waiting_for_us,
    # One sweep per resync period picks up pending pods whose wake-ups were lost.
    resync_keys=lambda: [scheduler.SWEEP],
)
