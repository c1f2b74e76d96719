"""The Celery tasks that run controllers (see the package docstring)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache
from django.db import close_old_connections

from clusterapi.controllers.base import Controller

logger = logging.getLogger(__name__)

# A pending mark outlives a lost task by at most this long; the resync ignores marks.
PENDING_SECONDS = 60
ERROR_RETRY_SECONDS = 2.0


def _pending_key(controller: str, namespace: str, name: str) -> str:
    return f"berth:pending:{controller}:{namespace}/{name}"


def enqueue(
    controller: Controller, namespace: str, name: str, delay: float = 0.0, *, force: bool = False
) -> None:
    """One pending reconcile per controller and key: later wake-ups fold into it.

    ``force`` (the resync) enqueues even when a mark says one is pending, since the task the
    mark stands for may have been lost with a worker or a broker.
    """
    key = _pending_key(controller.name, namespace, name)
    if force:
        cache.set(key, 1, PENDING_SECONDS)
    elif delay <= 0 and not cache.add(key, 1, PENDING_SECONDS):
        return
    reconcile_task.apply_async(
        args=[controller.name, namespace, name], countdown=delay or None, ignore_result=True
    )


@shared_task(name="berth.reconcile", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def reconcile_task(controller_name: str, namespace: str, name: str) -> None:
    """Run one reconcile; re-enqueue it when it asks to look again or fails."""
    from clusterapi.controllers import BY_NAME, leader

    controller = BY_NAME.get(controller_name)
    if controller is None:
        logger.warning("unknown controller %r", controller_name)
        return
    # Cleared before the work, so a change committed while we run wakes us again.
    cache.delete(_pending_key(controller_name, namespace, name))
    close_old_connections()
    try:
        if controller.singleton and not leader.is_leader(controller.name):
            return
        again = controller.reconcile(namespace, name)
    except Exception:
        logger.exception("reconcile %s %s/%s failed", controller_name, namespace, name)
        again = ERROR_RETRY_SECONDS
    finally:
        close_old_connections()
    if again is not None:
        enqueue(controller, namespace, name, again)


@shared_task(name="berth.dispatch", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def dispatch_task(api_version: str, kind_name: str, obj: dict[str, object]) -> int:
    """Map one committed change to the controllers' keys and enqueue them."""
    from clusterapi.controllers import dispatch

    close_old_connections()
    try:
        return dispatch(kind_name, obj)
    finally:
        close_old_connections()


@shared_task(name="berth.resync", ignore_result=True)
def resync_task() -> int:
    """Enqueue every object of every controller's kind: convergence after anything lost."""
    from clusterapi import store
    from clusterapi.controllers import CONTROLLERS
    from clusterapi.resources import KINDS

    count = 0
    close_old_connections()
    try:
        for controller in CONTROLLERS:
            if not controller.resync:
                continue
            for kind in KINDS:
                if kind.kind != controller.kind or kind.review:
                    continue
                for obj in store.list_objects(kind).objects():
                    meta = obj["metadata"]
                    enqueue(controller, meta.get("namespace", ""), meta["name"], force=True)
                    count += 1
    finally:
        close_old_connections()
    return count
