"""Controllers: level-triggered loops that converge the cluster toward what objects declare.

Each controller is a module named after the kind it reconciles, declaring a ``Controller``
(``base``); ``CONTROLLERS`` below is the table of contents, checked at start-up. The loops run
as Celery tasks (``tasks``) on the workers ``manage.py up`` starts (Redis broker in production):

* the store calls ``wake(kind, obj)`` after every committed write; each controller watching
  that kind gets one ``berth.reconcile`` task per key, deduplicated while one is pending;
* a reconcile that asks to look again later is re-enqueued with a countdown;
* celery beat runs ``berth.resync`` periodically, enqueuing every object of every controller,
  which guarantees convergence after lost tasks, crashes or restarts;
* loops marked ``singleton`` run only on the leader of their Lease (``leader``).
"""

from __future__ import annotations

import logging

from django.conf import settings

from clusterapi.controllers import (
    aggregation,
    configmap,
    cronjob,
    daemonset,
    deployment,
    disruption,
    garbagecollector,
    job,
    namespace,
    nodelifecycle,
    replicaset,
    replicationcontroller,
    serviceaccount,
    statefulset,
)
from clusterapi.controllers.base import Controller, Obj
from clusterapi.resources.registry import Kind
from clusterapi.scheduler import controller as scheduler_controller

logger = logging.getLogger(__name__)

CONTROLLERS: tuple[Controller, ...] = (
    namespace.CONTROLLER,
    aggregation.CONTROLLER,
    disruption.CONTROLLER,
    scheduler_controller.CONTROLLER,
    replicaset.CONTROLLER,
    replicationcontroller.CONTROLLER,
    deployment.CONTROLLER,
    job.CONTROLLER,
    cronjob.CONTROLLER,
    statefulset.CONTROLLER,
    daemonset.CONTROLLER,
    garbagecollector.CONTROLLER,
    nodelifecycle.CONTROLLER,
    serviceaccount.CONTROLLER,
    configmap.CONTROLLER,
)
BY_NAME: dict[str, Controller] = {c.name: c for c in CONTROLLERS}


def wake(kind: Kind, obj: Obj) -> None:
    """Hand a committed change to the workers, which work out the reconciles it calls for.

    Mapping a change to keys can read the store (which ReplicaSets select this orphan pod,
    which budgets cover it), so it runs on a worker, not in the request that committed the
    write; the change's revision joins the next batch message (``wakeups``). The write is
    committed whatever happens here: a wake-up that cannot be sent is dropped, and the
    periodic resync does what it would have done.
    """
    if not settings.BERTH_CONTROLLERS_ENABLED:
        return
    from clusterapi.controllers import wakeups

    revision = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    if revision.isdigit():
        wakeups.BUFFER.add(int(revision))


def dispatch(kind_name: str, obj: Obj) -> int:
    """Enqueue the reconciles a change calls for (deduplicated); returns how many keys."""
    from clusterapi.controllers.tasks import enqueue

    count = 0
    for controller in CONTROLLERS:
        for namespace_name, name in controller.keys_for(kind_name, obj):
            if name:
                enqueue(controller, namespace_name, name)
                count += 1
    return count
