"""The Celery tasks that run controllers (see the package docstring).

Two marks in the shared cache (Redis in production) keep the work per key small and serial:

* a **pending mark** (``enqueue``): while a reconcile of a key waits in the queue, further
  wake-ups of that key fold into it instead of queuing copies;
* a **key lock** (``key_lock``, taken by ``reconcile_task``): one reconcile of a key runs at a
  time, whatever the number of workers, because Celery delivers at least once and may run two
  tasks of one key side by side (a redelivery, a resync, a retry); two concurrent scale-ups of
  one ReplicaSet would both create the missing pods. A task that finds its key locked comes
  back after ``LOCK_RETRY_SECONDS``. The lock is renewed while its reconcile runs and expires
  ``LOCK_SECONDS`` after its holder stops renewing it, so a worker killed mid-reconcile holds
  its keys up for seconds, not minutes.

Neither mark is needed for correctness (every write is compare-and-swap and every reconcile
re-reads the store); both only save work. Losing them, say to a Redis restart, costs
duplicate work at worst, and the periodic resync brings back anything a lost task left.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from celery import shared_task
from django.core.cache import cache
from django.db import close_old_connections

from clusterapi.controllers.base import Controller

logger = logging.getLogger(__name__)

# A pending mark outlives a lost task by at most this long; the resync ignores marks.
PENDING_SECONDS = 60
ERROR_RETRY_SECONDS = 2.0
# A key lock whose holder stopped renewing it (a killed worker) is free after this long.
LOCK_SECONDS = 15
# How often a worker renews the locks of the reconciles it runs (well within LOCK_SECONDS).
LOCK_RENEW_SECONDS = 5.0
# How soon a reconcile that found its key locked looks again.
LOCK_RETRY_SECONDS = 0.5
# The longest countdown sent to the broker. A Redis broker redelivers a message that has not
# been acked within its visibility timeout, and a countdown message stays unacked until it is
# due; a reconcile that wants to sleep longer (a CronJob's next schedule) is simply run early,
# finds nothing to do and asks again.
MAX_DELAY_SECONDS = 60.0
# A scheduled look this long past due is taken for lost (``_claim_later``).
OVERDUE_SECONDS = 10.0


def _pending_key(controller: str, namespace: str, name: str) -> str:
    return f"berth:pending:{controller}:{namespace}/{name}"


def _lock_key(controller: str, namespace: str, name: str) -> str:
    return f"berth:lock:{controller}:{namespace}/{name}"


def _later_key(controller: str, namespace: str, name: str) -> str:
    return f"berth:later:{controller}:{namespace}/{name}"


def enqueue(
    controller: Controller, namespace: str, name: str, delay: float = 0.0, *, force: bool = False
) -> None:
    """One pending reconcile per controller and key: later wake-ups fold into it.

    ``force`` (the resync) enqueues even when a mark says one is pending, since the task the
    mark stands for may have been lost with a worker or a broker. A delayed look (``delay``)
    is one per key too (``_claim_later``).
    """
    if delay > 0 and not force:
        token = _claim_later(controller.name, namespace, name, delay)
        if token:
            _send(controller.name, namespace, name, delay, token)
        return
    key = _pending_key(controller.name, namespace, name)
    if force:
        cache.set(key, 1, PENDING_SECONDS)
    elif not cache.add(key, 1, PENDING_SECONDS):
        return
    _send(controller.name, namespace, name, delay)


def _claim_later(controller_name: str, namespace: str, name: str, delay: float) -> str:
    """Claim the key's one scheduled look; "" when one at least as soon is already scheduled.

    Every reconcile that asks to look again (a pod backing off, a Deployment waiting for
    minReadySeconds) would otherwise start a chain of delayed messages, and every wake-up
    of the key in between another: chains multiplied, one per wake-up, each running until
    the key converged (thousands of messages for hundreds of unschedulable pods). The mark
    names the scheduled look's due time and token; a sooner look takes it over, and a
    delayed task whose token no longer holds the mark is dropped (``reconcile_task``).
    """
    wait = min(delay, MAX_DELAY_SECONDS)
    due = time.time() + wait
    token = uuid.uuid4().hex
    key = _later_key(controller_name, namespace, name)
    ttl = int(wait) + PENDING_SECONDS
    if cache.add(key, f"{due:.3f}:{token}", ttl):
        return token
    current = cache.get(key)
    if current is not None:
        try:
            scheduled = float(str(current).split(":", 1)[0])
        except ValueError:
            scheduled = float("inf")
        # A mark long past its due time stands for a look that was lost (a killed worker, a
        # broker that dropped its held countdown messages): it is taken over rather than
        # left to block the key's looks until it expires. Should the old task still come,
        # its token no longer holds the mark and it is dropped.
        overdue = scheduled < time.time() - OVERDUE_SECONDS
        if scheduled <= due + 0.05 and not overdue:
            return ""
    cache.set(key, f"{due:.3f}:{token}", ttl)
    return token


def _send(controller_name: str, namespace: str, name: str, delay: float, token: str = "") -> None:
    countdown = min(delay, MAX_DELAY_SECONDS) if delay > 0 else None
    args = [controller_name, namespace, name] + ([token] if token else [])
    reconcile_task.apply_async(args=args, countdown=countdown, ignore_result=True)


def _look_again(controller_name: str, namespace: str, name: str, delay: float) -> None:
    """Retry a key that could not run now, once: if a task of the key is already pending
    (its mark is back), that one will look, and wake-ups meanwhile fold into this one."""
    if cache.add(_pending_key(controller_name, namespace, name), 1, PENDING_SECONDS):
        _send(controller_name, namespace, name, delay)


# --- one reconcile per key --------------------------------------------------------------------


class _HeldLocks:
    """The key locks this process holds, renewed by one thread while their reconciles run.

    The local table also makes the lock exact between the threads of one worker even where
    the cache's ``add`` is not atomic (the file-based cache of a broker-less instance).
    """

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.guard = threading.Lock()
        self.renewer_pid = 0

    def claim(self, key: str, token: str) -> bool:
        with self.guard:
            if key in self.tokens:
                return False
            self.tokens[key] = token
        try:
            acquired = bool(cache.add(key, token, LOCK_SECONDS))
        except BaseException:
            self.drop(key)
            raise
        if not acquired:
            self.drop(key)
            return False
        self._ensure_renewer()
        return True

    def drop(self, key: str) -> None:
        with self.guard:
            self.tokens.pop(key, None)

    def release(self, key: str, token: str) -> None:
        self.drop(key)
        try:
            # Not atomic, but harmless: a lock that expired and was taken by another worker
            # between the two calls is at worst freed early, and every write is CAS anyway.
            if cache.get(key) == token:
                cache.delete(key)
        except Exception:
            logger.warning("could not release %s; it expires by itself", key, exc_info=True)

    def renew(self) -> None:
        """Extend every lock still held; take back one the cache lost (a Redis restart)."""
        with self.guard:
            held = list(self.tokens.items())
        for key, token in held:
            try:
                current = cache.get(key)
                if current == token:
                    cache.touch(key, LOCK_SECONDS)
                elif current is None:
                    cache.add(key, token, LOCK_SECONDS)
            except Exception:
                logger.warning("could not renew %s", key, exc_info=True)

    def _ensure_renewer(self) -> None:
        # By process id: a thread started before a fork does not run in the child.
        with self.guard:
            if self.renewer_pid == os.getpid():
                return
            self.renewer_pid = os.getpid()
        threading.Thread(target=self._renew_forever, name="berth-key-locks", daemon=True).start()

    def _renew_forever(self) -> None:
        while True:
            time.sleep(LOCK_RENEW_SECONDS)
            self.renew()


_HELD = _HeldLocks()


@contextmanager
def key_lock(controller: str, namespace: str, name: str) -> Iterator[bool]:
    """Hold one key's lock while the block runs; yields whether it was acquired."""
    key = _lock_key(controller, namespace, name)
    token = uuid.uuid4().hex
    acquired = _HELD.claim(key, token)
    try:
        yield acquired
    finally:
        if acquired:
            _HELD.release(key, token)


# --- tasks ------------------------------------------------------------------------------------


@shared_task(name="berth.reconcile", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def reconcile_task(controller_name: str, namespace: str, name: str, token: str = "") -> None:
    """Run one reconcile under its key's lock; re-enqueue it when it asks to look again,
    fails, or finds another reconcile of its key running. ``token`` marks a delayed look:
    it runs only while it is still the key's scheduled one (``_claim_later``)."""
    from clusterapi.controllers import BY_NAME, leader

    controller = BY_NAME.get(controller_name)
    if controller is None:
        logger.warning("unknown controller %r", controller_name)
        return
    if token:
        later = _later_key(controller_name, namespace, name)
        current = cache.get(later)
        if current is not None:
            if not str(current).endswith(":" + token):
                return  # a sooner look replaced this one
            cache.delete(later)
    # Cleared before the work, so a change committed while we run wakes us again.
    cache.delete(_pending_key(controller_name, namespace, name))
    close_old_connections()
    again: float | None = None
    try:
        if controller.singleton and not leader.is_leader(controller.name):
            # Leadership may be changing hands (the leader's worker died): the key must not
            # be dropped, or what woke it waits for an event that may never come.
            _look_again(controller_name, namespace, name, leader.RENEW_SECONDS)
            return
        with key_lock(controller_name, namespace, name) as held:
            if not held:
                # The holder may have read the store before the change that woke us: look
                # again once it is done.
                _look_again(controller_name, namespace, name, LOCK_RETRY_SECONDS)
                return
            again = controller.reconcile(namespace, name)
    except Exception:
        logger.exception("reconcile %s %s/%s failed", controller_name, namespace, name)
        again = ERROR_RETRY_SECONDS
    finally:
        close_old_connections()
    if again is not None:
        enqueue(controller, namespace, name, again)


# SQLite bounds the parameters of one statement; a large batch is read in parts.
_CHANGES_PER_QUERY = 500


def dispatch_changes(revisions: list[int]) -> int:
    """Map committed changes (by revision, read from the change log) to the controllers'
    keys and enqueue them; returns how many keys. Changes already compacted away are
    skipped: the resync covers them."""
    from clusterapi import store
    from clusterapi.controllers import dispatch
    from clusterapi.core.models import Change

    count = 0
    ordered = sorted(set(revisions))
    for start in range(0, len(ordered), _CHANGES_PER_QUERY):
        part = ordered[start : start + _CHANGES_PER_QUERY]
        rows = (
            Change.objects.filter(revision__in=part)
            .order_by("revision")
            .values_list("data", flat=True)
        )
        # The mappers of one part list the same owners and budgets again and again.
        with store.shared_lists():
            for data in list(rows):
                obj = orjson.loads(data)
                count += dispatch(str(obj.get("kind", "")), obj)
    return count


@shared_task(
    name="berth.dispatch_changes", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def dispatch_changes_task(revisions: list[int]) -> int:
    """Map a batch of committed changes to the controllers' keys and enqueue them."""
    close_old_connections()
    try:
        return dispatch_changes(revisions)
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
            if controller.resync_keys is not None:
                for namespace, name in controller.resync_keys():
                    enqueue(controller, namespace, name, force=True)
                    count += 1
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
