"""The scheduling queue: priority order, exponential backoff, retry on cluster changes."""

from __future__ import annotations

from clusterapi.scheduler.framework import PodInfo
from clusterapi.scheduler.queue import FLUSH_SECONDS, SchedulingQueue, backoff
from tests.clusterapi.scheduler.helpers import pod


def test_backoff_doubles_from_one_second_up_to_ten() -> None:
    assert [backoff(n) for n in range(7)] == [0, 1, 2, 4, 8, 10, 10]


def test_order_is_priority_then_creation_then_name() -> None:
    pods = [
        PodInfo(pod("b", priority=0)),
        PodInfo(pod("a", priority=0)),
        PodInfo(pod("vip", priority=100)),
    ]
    pods[0].creation = pods[1].creation = "2030-01-01T00:00:00Z"
    queue = SchedulingQueue()
    assert [p.name for p in queue.order(pods)] == ["vip", "a", "b"]


def test_a_failed_pod_waits_for_its_backoff_and_a_cluster_change() -> None:
    now = [100.0]
    queue = SchedulingQueue(clock=lambda: now[0])
    p = PodInfo(pod("p"))
    assert queue.ready(p, moves=0)
    assert queue.failed(p, moves=5) == 1.0
    assert not queue.ready(p, moves=6)  # the backoff has not passed
    now[0] += 1.5
    assert queue.ready(p, moves=6)  # passed, and the cluster changed
    assert not queue.ready(p, moves=5)  # passed, but nothing changed since
    assert queue.retry_in(p, moves=5) == FLUSH_SECONDS - 1.5
    now[0] += FLUSH_SECONDS
    assert queue.ready(p, moves=5)  # flushed after waiting long enough
    assert queue.failed(p, moves=5) == 2.0  # the second failure backs off longer


def test_forgetting_and_pruning_reset_the_backoff() -> None:
    queue = SchedulingQueue(clock=lambda: 0.0)
    p, q = PodInfo(pod("p")), PodInfo(pod("q"))
    queue.failed(p, 0)
    queue.failed(q, 0)
    queue.forget(p)
    assert queue.attempts(p) == 0
    queue.prune([p.uid])
    assert queue.attempts(q) == 0
