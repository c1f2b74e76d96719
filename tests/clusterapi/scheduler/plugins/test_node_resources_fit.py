"""NodeResourcesFit: requests must fit what is left; Least/MostAllocated scoring."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi.scheduler.framework import Code, PodInfo, pod_requests
from clusterapi.scheduler.plugins.node_resources_fit import (
    LEAST_ALLOCATED,
    MOST_ALLOCATED,
    NodeResourcesFit,
    new,
)
from tests.clusterapi.scheduler.helpers import container, info, node, pod, state

GI = 2**30


@pytest.mark.parametrize(
    ("request_", "used", "reasons", "code"),
    [
        pytest.param({"cpu": "1"}, [], (), None, id="fits-an-empty-node"),
        pytest.param({"cpu": "3"}, [{"cpu": "1"}], (), None, id="fits-exactly"),
        pytest.param(
            {"cpu": "3"},
            [{"cpu": "1500m"}],
            ("Insufficient cpu",),
            Code.UNSCHEDULABLE,
            id="insufficient-cpu-left",
        ),
        pytest.param(
            {"memory": "6Gi"},
            [{"memory": "4Gi"}],
            ("Insufficient memory",),
            Code.UNSCHEDULABLE,
            id="insufficient-memory-left",
        ),
        pytest.param(
            {"cpu": "3", "memory": "6Gi"},
            [{"cpu": "2", "memory": "4Gi"}],
            ("Insufficient cpu", "Insufficient memory"),
            Code.UNSCHEDULABLE,
            id="every-shortfall-is-reported",
        ),
        pytest.param(
            {"cpu": "5"},
            [],
            ("Insufficient cpu",),
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            id="larger-than-the-node-is-unresolvable",
        ),
        pytest.param({}, [{"cpu": "4"}], (), None, id="request-less-pod-fits-a-full-node"),
    ],
)
def test_filter_resources(
    request_: dict[str, Any], used: list[dict[str, Any]], reasons: tuple, code: Code | None
) -> None:
    running = [pod(f"r{i}", node_name="n", **u) for i, u in enumerate(used)]
    n = info(node("n", cpu="4", memory="8Gi"), running)
    status = new({}).filter(state(), PodInfo(pod("p", **request_)), n)
    if code is None:
        assert status is None
    else:
        assert status is not None
        assert status.reasons == reasons
        assert status.code == code


def test_too_many_pods() -> None:
    n = info(node("n", pods="2"), [pod("a", node_name="n"), pod("b", node_name="n")])
    status = new({}).filter(state(), PodInfo(pod("p")), n)
    assert status is not None and status.reasons == ("Too many pods",)
    assert status.code == Code.UNSCHEDULABLE


def test_ephemeral_storage_and_extended_resources() -> None:
    n = info(node("n", extra={"ephemeral-storage": "10Gi", "example.com/gpu": "1"}))
    wants = container(resources={"requests": {"ephemeral-storage": "20Gi", "example.com/gpu": "2"}})
    status = new({}).filter(state(), PodInfo(pod("p", containers=[wants])), n)
    assert status is not None
    assert status.reasons == ("Insufficient ephemeral-storage", "Insufficient example.com/gpu")
    gone = info(node("m"))
    status = new({}).filter(
        state(),
        PodInfo(pod("p", containers=[container(resources={"requests": {"example.com/gpu": "1"}})])),
        gone,
    )
    assert status is not None and status.reasons == ("Insufficient example.com/gpu",)


@pytest.mark.parametrize(
    ("spec", "cpu_milli", "memory"),
    [
        pytest.param(
            {"containers": [container("1", "1Gi"), container("500m", "1Gi")]},
            1500,
            2 * GI,
            id="containers-are-summed",
        ),
        pytest.param(
            {
                "containers": [container("1", "1Gi")],
                "initContainers": [container("2", "512Mi"), container("250m", "3Gi")],
            },
            2000,
            3 * GI,
            id="max-of-sum-and-largest-init-container-per-resource",
        ),
        pytest.param(
            {
                "containers": [container("1")],
                "initContainers": [
                    container("500m", restartPolicy="Always"),
                    container("1"),
                ],
            },
            1500,
            0,
            id="sidecars-run-alongside",
        ),
        pytest.param(
            {"containers": [container("1", "1Gi")], "overhead": {"cpu": "250m", "memory": "1Gi"}},
            1250,
            2 * GI,
            id="overhead-is-added",
        ),
        pytest.param(
            {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]},
            2000,
            0,
            id="limits-stand-for-missing-requests",
        ),
    ],
)
def test_pod_requests_follow_the_init_container_rule(
    spec: dict[str, Any], cpu_milli: int, memory: int
) -> None:
    requests = pod_requests(spec)
    assert requests.get("cpu", 0) == cpu_milli
    assert requests.get("memory", 0) == memory


def scores(plugin: NodeResourcesFit, incoming: dict[str, Any], used: dict[str, Any]) -> int:
    n = info(node("n", cpu="4", memory="8Gi"), [pod("r", node_name="n", **used)])
    return plugin.score(state(), PodInfo(pod("p", **incoming)), n)


def test_least_allocated_prefers_empty_nodes() -> None:
    plugin = new({})
    # cpu: (4000 - 2000) * 100 / 4000 = 50; memory: (8 - 2) * 100 / 8 = 75; mean 62.
    assert scores(plugin, {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}) == 62


def test_most_allocated_prefers_full_nodes() -> None:
    plugin = new({"scoringStrategy": {"type": MOST_ALLOCATED}})
    assert plugin.strategy == MOST_ALLOCATED
    # cpu: 2000 * 100 / 4000 = 50; memory: 2 * 100 / 8 = 25; mean 37.
    assert scores(plugin, {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}) == 37


def test_request_less_containers_are_scored_at_default_sizes() -> None:
    plugin = NodeResourcesFit(LEAST_ALLOCATED)
    # 100m of 4000m and 200Mi of 8Gi assumed: (3900*100//4000 + (8192-200)*100//8192) // 2
    expected = (3900 * 100 // 4000 + (8192 - 200) * 100 // 8192) // 2
    assert plugin.score(state(), PodInfo(pod("p")), info(node("n", cpu="4", memory="8Gi"))) == (
        expected
    )


def test_resource_weights_are_configurable() -> None:
    plugin = new(
        {
            "scoringStrategy": {
                "type": LEAST_ALLOCATED,
                "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}],
            }
        }
    )
    # cpu 50 * 3 + memory 75 * 1, over 4.
    assert scores(plugin, {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}) == (
        (50 * 3 + 75) // 4
    )


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="RequestedToCapacityRatio"):
        new({"scoringStrategy": {"type": "RequestedToCapacityRatio"}})
