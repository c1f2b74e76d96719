"""Controllers: level-triggered loops that converge the cluster toward what objects declare.

A controller is a module named after the kind it reconciles, with a ``reconcile(key)``
function that re-reads state, converges it through ``clusterapi.store`` and is safe to run
twice or concurrently. ``CONTROLLERS`` maps each watched kind to the controllers it wakes.

The store calls ``wake`` after every committed write. Until the Celery workers of the control
loops issue land, woken reconciles run on one background thread of the process that wrote
(with retries on a timer while the work is unfinished); the same ``reconcile`` functions will
become Celery tasks unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections

from clusterapi.resources.registry import Kind

logger = logging.getLogger(__name__)

# reconcile(namespace, name) -> seconds after which to run again, or None when converged.
Reconcile = Callable[[str, str], float | None]


def _namespace_reconcile(namespace: str, name: str) -> float | None:
    from clusterapi.controllers import namespace as namespace_controller

    return namespace_controller.reconcile(name)


# kind name -> controllers to wake with the changed object's (namespace, name).
CONTROLLERS: dict[str, tuple[Reconcile, ...]] = {
    "Namespace": (_namespace_reconcile,),
}

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="berth-controller")
_pending: set[tuple[int, str, str]] = set()
_lock = threading.Lock()


def wake(kind: Kind, namespace: str, name: str) -> None:
    """Queue the controllers that watch ``kind`` for this object (deduplicated)."""
    for reconcile in CONTROLLERS.get(kind.kind, ()):
        _enqueue(reconcile, namespace, name)


def _enqueue(reconcile: Reconcile, namespace: str, name: str, delay: float = 0.0) -> None:
    key = (id(reconcile), namespace, name)
    with _lock:
        if key in _pending:
            return
        _pending.add(key)

    def run() -> None:
        with _lock:
            _pending.discard(key)
        close_old_connections()
        try:
            again = reconcile(namespace, name)
        except Exception:
            logger.exception("reconcile of %s/%s failed; retrying", namespace, name)
            again = 2.0
        finally:
            close_old_connections()
        if again is not None:
            _enqueue(reconcile, namespace, name, again)

    if delay:
        timer = threading.Timer(delay, lambda: _executor.submit(run))
        timer.daemon = True
        timer.start()
    else:
        _executor.submit(run)
