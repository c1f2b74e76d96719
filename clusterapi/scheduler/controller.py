"""The scheduler as a control loop: ``Controller(name="scheduler", kind="Pod")``.

Every change that can concern scheduling wakes one key, ``SWEEP``: a pod pending for one of
our profiles (unbound, ``spec.schedulerName`` ours, not being deleted), a Node added or
changed (joined, uncordoned, relabelled) and a bound pod that is going away. The sweep runs
a *batch* over every pending pod that is due, so a burst of pods created together costs one
task: the wake-ups of a thousand new pods fold into the one pending sweep instead of a
thousand messages and reconciles that would each find their pod already bound. A pod that
stays unschedulable waits out its backoff in the queue; the sweep reschedules itself for the
earliest due time (``Scheduler._next_due``).

``reconcile`` still takes a pod's key (a test, or a message queued by an older version): it
schedules the batch if that pod is due.

The loop is a singleton (only the leader of the ``berth-scheduler`` Lease runs it), so two
schedulers never assume the same free capacity. There is no per-pod periodic resync: it
would enqueue every pod in the cluster each period, while one sweep per period
(``resync_keys``) picks up pods whose wake-ups were lost with a worker or a broker.
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


def _pod_changed(obj: Obj) -> Iterable[Key]:
    if _waiting_for_us(obj) or _leaving(obj):
        yield scheduler.SWEEP


def _leaving(obj: Obj) -> bool:
    """Whether a bound pod is going away, which may make room for a pending one."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    return bool(spec.get("nodeName")) and bool(
        meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed")
    )


CONTROLLER = Controller(
    name="scheduler",
    kind="Pod",
    reconcile=reconcile,
    watches={"Node": _node_changed, "Pod": _pod_changed},
    singleton=True,
    resync=False,
    # No key per pod: every pod change that concerns us wakes the sweep (_pod_changed).
    accepts=lambda obj: False,
    # One sweep per resync period picks up pending pods whose wake-ups were lost.
    resync_keys=lambda: [scheduler.SWEEP],
)
