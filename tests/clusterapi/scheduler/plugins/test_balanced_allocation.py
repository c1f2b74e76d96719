"""BalancedAllocation: rewards placements that make cpu and memory use more even."""

from __future__ import annotations

import pytest

from clusterapi.scheduler.framework import Code, PodInfo
from clusterapi.scheduler.plugins.balanced_allocation import balance, new
from tests.clusterapi.scheduler.helpers import info, node, pod, state


@pytest.mark.parametrize(
    ("used", "incoming", "expected"),
    [
        # Empty node, pod uses 50% cpu and 25% memory: balance 1.0 -> 0.875.
        pytest.param({}, {"cpu": "2", "memory": "2Gi"}, 68, id="unbalancing-an-empty-node"),
        # Node at 50% cpu, 0% memory; pod adds 50% memory: 0.75 -> 1.0.
        pytest.param({"cpu": "2"}, {"memory": "4Gi"}, 87, id="rebalancing-a-node"),
        # The same fractions of both: balance stays 1.0.
        pytest.param({}, {"cpu": "1", "memory": "2Gi"}, 75, id="no-change-scores-75"),
    ],
)
def test_score_rewards_improving_balance(used: dict, incoming: dict, expected: int) -> None:
    n = info(node("n", cpu="4", memory="8Gi"), [pod("r", node_name="n", **used)] if used else [])
    assert new({}).score(state(), PodInfo(pod("p", **incoming)), n) == expected


def test_balance_of_more_than_two_resources_uses_the_standard_deviation() -> None:
    assert balance([0.5, 0.5, 0.5]) == 1.0
    assert balance([0.0, 1.0]) == 0.5
    assert round(balance([0.0, 0.5, 1.0]), 4) == round(1 - (1 / 6) ** 0.5, 4)


def test_best_effort_pods_are_not_scored() -> None:
    status = new({}).pre_score(state(), PodInfo(pod("p")), [])
    assert status is not None and status.code == Code.SKIP
