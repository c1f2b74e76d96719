"""The scheduler: take pending pods, find them nodes, bind them, explain failures.

One pod (``Scheduler.schedule_one``):

1. ``cache.sync()`` reads what changed in the store since the last cycle.
2. ``Framework.evaluate`` filters and scores every node; the best node wins, ties broken at
   random (``random.Random(seed)``, so tests are deterministic).
3. Bind: one compare-and-swap write through the store with the binding subresource's
   rules (``spec.nodeName`` is set only if still unset and the pod is not being deleted;
   else 409). The Pod strategy marks a pod with a node ``PodScheduled=True`` in the same
   write. The bound pod is placed in the cache at once ("assumed"), so the next pod sees it.
4. No node fits: DefaultPreemption (``preemption``) may nominate a node and evict
   lower-priority pods; the pod gets ``PodScheduled=False`` (reason ``Unschedulable``) with
   upstream's message, a ``FailedScheduling`` event, and a backoff in the queue.

A batch (``Scheduler.schedule_pending``) runs the same cycle over every pending pod, in the
queue's order (priority, then age), within a time budget: one cache sync, then per pod an
incremental evaluation (``framework.Evaluation``) and one store write, the writes of up to
``WRITE_RUN_SECONDS`` committed together. This is what the
controller (``clusterapi.scheduler.controller``) runs when woken, and what reaches the
throughput the benchmark (``bench/scheduler.py``) measures.

A ``Scheduler`` is used by one thread at a time (``lock``); the process-wide instance is
``get()``. Loops run on the leader only (the controller is a singleton), so two schedulers
never assume capacity on the same node.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from clusterapi import store
from clusterapi.controllers import events
from clusterapi.scheduler import preemption
from clusterapi.scheduler.cache import SchedulerCache, kind
from clusterapi.scheduler.framework import (
    DEFAULT_SCHEDULER_NAME,
    Evaluation,
    Framework,
    PodInfo,
    Profile,
    Result,
    default_profile,
)
from clusterapi.scheduler.queue import SchedulingQueue
from clusterapi.store import errors, sql
from clusterapi.store.errors import ApiError

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]

COMPONENT = DEFAULT_SCHEDULER_NAME
# The key the controller uses for "schedule whatever is pending" (no pod can be named so).
SWEEP: Key = ("", "~pending")
BATCH_SECONDS = 5.0
CONTINUE_SECONDS = 0.05
BUSY_SECONDS = 0.5
# How long one transaction of a batch's writes may hold the store's write lock.
WRITE_RUN_SECONDS = 0.05
_MEMO_LIMIT = 256


class _Skip(Exception):
    """Raised inside a read-modify-write to leave the object alone."""


@dataclass
class Outcome:
    """What happened to one pod in one cycle."""

    namespace: str
    name: str
    node: str | None = None  # where it was bound
    message: str = ""  # why it was not (the FailedScheduling message)
    nominated: str | None = None  # the node preemption nominated
    error: str = ""  # a write that failed (conflict, gone): retried later

    @property
    def scheduled(self) -> bool:
        return self.node is not None


@dataclass
class BatchResult:
    scheduled: int = 0
    unschedulable: int = 0
    errors: int = 0
    remaining: int = 0  # pending pods left for the next batch (time budget spent)
    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)


def set_condition(status: Obj, condition: Obj) -> None:
    """``UpdatePodCondition``: replace the condition of that type, keeping its
    ``lastTransitionTime`` unless its status changed."""
    conditions = status.setdefault("conditions", [])
    for i, existing in enumerate(conditions):
        if existing.get("type") == condition["type"]:
            if existing.get("status") == condition["status"] and existing.get("lastTransitionTime"):
                condition["lastTransitionTime"] = existing["lastTransitionTime"]
            conditions[i] = condition
            return
    conditions.append(condition)


class Scheduler:
    """See the module docstring."""

    def __init__(
        self,
        profiles: Iterable[Profile] | None = None,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        record_scheduled_events: bool = True,
    ) -> None:
        self.frameworks = {
            p.scheduler_name: Framework(p) for p in (profiles or [default_profile()])
        }
        self.cache = SchedulerCache(self.frameworks)
        self.queue = SchedulingQueue(clock)
        self.rng = random.Random(seed)  # noqa: S311 - tie-breaking, not security
        self.clock = clock
        self.record_scheduled_events = record_scheduled_events
        self.lock = threading.Lock()
        self._memos: OrderedDict[Hashable, Evaluation] = OrderedDict()

    # -- entry points --

    def schedule_one(self, namespace: str, name: str) -> Outcome:
        """Schedule one pod now (if it is pending for us), whatever its backoff."""
        with self.lock:
            self.cache.sync()
            pod = self.cache.pending.get((namespace, name))
            if pod is None:
                current = self.cache.pods.get((namespace, name))
                node = current.node_name if current is not None else None
                return Outcome(
                    namespace, name, node=node or None, error="" if node else "not pending"
                )
            return self._schedule(pod)

    def schedule_pending(
        self, *, limit: int | None = None, budget: float | None = None, keep_outcomes: bool = False
    ) -> BatchResult:
        """Schedule every pending pod that is due, highest priority first."""
        with self.lock:
            self.cache.sync()
            return self._batch(limit=limit, budget=budget, keep_outcomes=keep_outcomes)

    def _next_due(self) -> float | None:
        """Seconds until the first pending pod may be tried again (None: nothing pending)."""
        moves = self.cache.moves
        waits = [self.queue.retry_in(pod, moves) for pod in self.cache.pending.values()]
        return max(min(waits), CONTINUE_SECONDS) if waits else None

    def reconcile(self, namespace: str, name: str) -> float | None:
        """The controller's reconcile: schedule what is pending; when to look again."""
        if not self.lock.acquire(blocking=False):
            return BUSY_SECONDS  # a batch is running; it may or may not include this pod
        try:
            self.cache.sync()
            key = (namespace, name)
            if key != SWEEP:
                pod = self.cache.pending.get(key)
                if pod is None:
                    return None
                wait = self.queue.retry_in(pod, self.cache.moves)
                if wait > 0:
                    return wait
            result = self._batch(budget=BATCH_SECONDS)
            if result.remaining:
                return CONTINUE_SECONDS
            if key == SWEEP:
                return self._next_due()
            pod = self.cache.pending.get(key)
            if pod is None:
                return None
            return max(self.queue.retry_in(pod, self.cache.moves), CONTINUE_SECONDS)
        finally:
            self.lock.release()

    # -- the cycle --

    def _batch(
        self, *, limit: int | None = None, budget: float | None = None, keep_outcomes: bool = False
    ) -> BatchResult:
        started = time.perf_counter()
        moves = self.cache.moves
        pending = self.cache.pending_pods()
        self.queue.prune(p.uid for p in pending)
        due = self.queue.order(p for p in pending if self.queue.ready(p, moves))
        result = BatchResult()
        index = 0
        while index < len(due) and not result.remaining:
            # The writes of a short run of pods share one transaction: a commit per bind was
            # a fifth of its cost. But a run holds the store's write lock (SQLite's file,
            # PostgreSQL's revision row) through all its work, evaluation included, so it is
            # kept short, and while another writer (an API request) waits for the lock, pods
            # go one at a time without a run: each write then holds the lock only for its
            # own statements.
            alone = not sql.others_waiting()
            try:
                with transaction.atomic() if alone else contextlib.nullcontext():
                    run_started = time.perf_counter()
                    while index < len(due):
                        if (limit is not None and index >= limit) or (
                            budget is not None and time.perf_counter() - started > budget
                        ):
                            result.remaining = len(due) - index
                            break
                        pod = due[index]
                        index += 1
                        if self.cache.pending.get(pod.key) is not pod:
                            continue  # changed under us (preemption, a conflict): next batch
                        outcome = self._schedule(pod)
                        if outcome.scheduled:
                            result.scheduled += 1
                        elif outcome.error:
                            result.errors += 1
                        else:
                            result.unschedulable += 1
                        if keep_outcomes:
                            result.outcomes.append(outcome)
                        if (
                            not alone
                            or time.perf_counter() - run_started > WRITE_RUN_SECONDS
                            or sql.others_waiting()
                        ):
                            break
            except BaseException:
                # The run's binds were assumed into the cache but never committed.
                self.cache.invalidate()
                raise
        result.seconds = time.perf_counter() - started
        return result

    def _memo(self, pod: PodInfo) -> Evaluation:
        key = pod.signature
        memo = self._memos.get(key)
        if memo is None:
            memo = self._memos[key] = Evaluation()
            if len(self._memos) > _MEMO_LIMIT:
                self._memos.popitem(last=False)
        else:
            self._memos.move_to_end(key)
        return memo

    def _schedule(self, pod: PodInfo) -> Outcome:
        framework = self.frameworks[pod.scheduler_name]
        snapshot = self.cache.snapshot
        result = framework.evaluate(pod, snapshot, self._memo(pod))
        nominated = pod.nominated_node_name
        node = nominated if nominated and result.fits(nominated) else result.best(self.rng)
        if node is not None:
            return self._bind(pod, node)
        post_filter = ""
        nominate: str | None = None
        if framework.profile.preemption and result.num_nodes:
            post_filter, nominate = self._preempt(framework, pod, result)
        message = result.message(post_filter)
        return self._unschedulable(pod, message, nominate)

    # -- writes --

    def _bind(self, pod: PodInfo, node: str) -> Outcome:
        pod_kind = kind("v1", "Pod")
        namespace, name = pod.key

        def assign(obj: Obj) -> Obj:
            meta = obj["metadata"]
            spec = obj.setdefault("spec", {})
            if meta.get("uid") != pod.uid:
                raise errors.conflict(pod_kind, name, "the pod was replaced")
            current = spec.get("nodeName")
            if current:
                raise errors.conflict(
                    pod_kind, name, f'pod {name} is already assigned to node "{current}"'
                )
            if meta.get("deletionTimestamp"):
                raise errors.conflict(pod_kind, name, "pod is being deleted, cannot be assigned")
            spec["nodeName"] = node
            return obj

        try:
            # Binding writes no managedFields entry upstream either: it bypasses field
            # management, and skipping it keeps a bind one cheap write.
            written = store.guaranteed_update(
                pod_kind,
                namespace,
                name,
                assign,
                subresource="binding",
                field_manager=COMPONENT,
                manage_fields=False,
            )
        except ApiError as exc:
            return self._write_failed(pod, exc)
        self.cache.assume(pod, written.obj)
        self.queue.forget(pod)
        if self.record_scheduled_events:
            self._event(
                written.obj,
                events.NORMAL,
                "Scheduled",
                f"Successfully assigned {namespace}/{name} to {node}",
            )
        return Outcome(namespace, name, node=node)

    def _write_failed(self, pod: PodInfo, exc: ApiError) -> Outcome:
        namespace, name = pod.key
        if exc.reason == "NotFound":
            self.cache.forget(pod.key)
        else:
            # Someone else changed the pod: read it back so the cache is right again.
            try:
                self.cache.observe(store.get(kind("v1", "Pod"), namespace, name))
            except ApiError:
                self.cache.forget(pod.key)
        return Outcome(namespace, name, error=exc.message)

    def _unschedulable(self, pod: PodInfo, message: str, nominate: str | None) -> Outcome:
        """PodScheduled=False with the message, the nomination if any, the event, backoff."""
        namespace, name = pod.key
        now = store.now()

        def mark(obj: Obj) -> Obj:
            if (obj.get("spec") or {}).get("nodeName") or obj["metadata"].get("uid") != pod.uid:
                raise _Skip
            status = obj.setdefault("status", {})
            set_condition(
                status,
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                    "reason": "Unschedulable",
                    "message": message,
                },
            )
            if nominate:
                status["nominatedNodeName"] = nominate
            elif nominate is not None or status.get("nominatedNodeName") == "":
                status.pop("nominatedNodeName", None)
            return obj

        self.queue.failed(pod, self.cache.moves)
        try:
            written = store.guaranteed_update(
                kind("v1", "Pod"),
                namespace,
                name,
                mark,
                subresource="status",
                field_manager=COMPONENT,
            )
        except _Skip:
            return Outcome(namespace, name, message=message, error="no longer pending")
        except ApiError as exc:
            outcome = self._write_failed(pod, exc)
            outcome.message = message
            return outcome
        observed = self.cache.observe(written.obj)
        if nominate:
            self.cache.snapshot.nominate(observed, nominate)
        self._event(written.obj, events.WARNING, "FailedScheduling", message)
        return Outcome(namespace, name, message=message, nominated=nominate)

    def _preempt(
        self, framework: Framework, pod: PodInfo, result: Result
    ) -> tuple[str, str | None]:
        """Run DefaultPreemption; (PostFilter message, node to nominate or "" to clear)."""
        pdb_kind = kind("policy/v1", "PodDisruptionBudget")
        pdbs = store.list_objects(pdb_kind, pod.namespace).objects()
        outcome = preemption.preempt(framework, pod, result, self.cache.snapshot, pdbs)
        if outcome.node is None:
            return outcome.message, "" if pod.nominated_node_name else None
        pod_kind = kind("v1", "Pod")
        now = store.now()
        for victim in outcome.victims:
            vns, vname = victim.key

            def mark(obj: Obj, victim: PodInfo = victim) -> Obj:
                if obj["metadata"].get("uid") != victim.uid:
                    raise _Skip
                set_condition(
                    obj.setdefault("status", {}), preemption.victim_condition(victim, now)
                )
                return obj

            try:
                store.guaranteed_update(
                    pod_kind, vns, vname, mark, subresource="status", field_manager=COMPONENT
                )
                deleted = store.delete(pod_kind, vns, vname, precondition_uid=victim.uid)
            except (_Skip, ApiError) as exc:
                logger.info("could not preempt %s/%s: %s", vns, vname, exc)
                continue
            if deleted.deleted:
                self.cache.forget(victim.key)
            else:
                self.cache.observe(deleted.obj)
            self._event(
                deleted.obj,
                events.NORMAL,
                "Preempted",
                f"Preempted by pod {pod.uid} on node {outcome.node}",
            )
        # Lower-priority pods nominated there may no longer fit: let them look elsewhere.
        assert outcome.node is not None
        for other in preemption.lower_priority_nominated(self.cache.snapshot, pod, outcome.node):

            def clear(obj: Obj) -> Obj:
                (obj.get("status") or {}).pop("nominatedNodeName", None)
                return obj

            try:
                written = store.guaranteed_update(
                    pod_kind, *other.key, clear, subresource="status", field_manager=COMPONENT
                )
                self.cache.observe(written.obj)
            except ApiError:
                self.cache.snapshot.forget_nomination(other)
        return "", outcome.node

    def _event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        try:
            events.record(obj, type_, reason, message, component=COMPONENT)
        except ApiError as exc:  # an event is never worth failing a cycle for
            logger.debug("event %s not recorded: %s", reason, exc)


_scheduler: Scheduler | None = None
_scheduler_lock = threading.Lock()


def get() -> Scheduler:
    """The process-wide scheduler (created on first use)."""
    global _scheduler
    with _scheduler_lock:
        if _scheduler is None:
            _scheduler = Scheduler()
        return _scheduler


def reset(scheduler: Scheduler | None = None) -> None:
    """Replace the process-wide scheduler (tests start from an empty cache)."""
    global _scheduler
    with _scheduler_lock:
        _scheduler = scheduler


def schedule_one(namespace: str, name: str) -> Outcome:
    """Schedule one pod with the process-wide scheduler."""
    return get().schedule_one(namespace, name)


def schedule_pending(*, limit: int | None = None, budget: float | None = None) -> BatchResult:
    """Schedule every due pending pod with the process-wide scheduler."""
    return get().schedule_pending(limit=limit, budget=budget)
