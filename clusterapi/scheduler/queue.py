"""The scheduling queue: which pending pods to try, in which order, and when to retry.

Order (upstream's ``PrioritySort``): higher ``spec.priority`` first, then the older pod
(``creationTimestamp``), then by namespace and name so the order is total.

Retries follow upstream's queue. A pod that could not be scheduled goes to the
*unschedulable pool* with a per-pod backoff (1 s, doubling per attempt, at most 10 s).
It is tried again once its backoff has passed **and** the cluster has changed in a way that
may help since it failed (the cache's ``moves`` counter: a node added or changed, a pod
gone from a node), or once it has waited ``FLUSH_SECONDS`` whatever happened (upstream
flushes after 5 minutes; Berth sooner, since it sees fewer kinds of events). A pod's
attempts are forgotten when it is bound or deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from clusterapi.scheduler.framework import PodInfo

INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0
FLUSH_SECONDS = 60.0


def backoff(attempts: int) -> float:
    """The backoff after ``attempts`` failed attempts (1, 2, 4, 8, 10, 10, ... seconds)."""
    if attempts <= 0:
        return 0.0
    return min(INITIAL_BACKOFF_SECONDS * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)


def sort_key(pod: PodInfo) -> tuple[int, str, str, str]:
    return (-pod.priority, pod.creation, pod.namespace, pod.name)


@dataclass
class _Failure:
    attempts: int
    failed_at: float
    moves: int


class SchedulingQueue:
    """Backoff bookkeeping for pending pods (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, _Failure] = {}

    def order(self, pods: Iterable[PodInfo]) -> list[PodInfo]:
        return sorted(pods, key=sort_key)

    def attempts(self, pod: PodInfo) -> int:
        failure = self._failures.get(pod.uid)
        return failure.attempts if failure else 0

    def retry_in(self, pod: PodInfo, moves: int) -> float:
        """Seconds until the pod may be tried again (0: now)."""
        failure = self._failures.get(pod.uid)
        if failure is None:
            return 0.0
        now = self.clock()
        waited = now - failure.failed_at
        remaining_backoff = backoff(failure.attempts) - waited
        if moves > failure.moves:
            return max(remaining_backoff, 0.0)
        return max(remaining_backoff, FLUSH_SECONDS - waited, 0.0)

    def ready(self, pod: PodInfo, moves: int) -> bool:
        return self.retry_in(pod, moves) <= 0

    def failed(self, pod: PodInfo, moves: int) -> float:
        """Record a failed attempt; returns the backoff before the next one."""
        previous = self._failures.get(pod.uid)
        attempts = (previous.attempts if previous else 0) + 1
        self._failures[pod.uid] = _Failure(attempts, self.clock(), moves)
        return backoff(attempts)

    def forget(self, pod: PodInfo) -> None:
        self._failures.pop(pod.uid, None)

    def prune(self, live_uids: Iterable[str]) -> None:
        """Drop the bookkeeping of pods that are no longer pending."""
        live = set(live_uids)
        for uid in [u for u in self._failures if u not in live]:
            del self._failures[uid]
