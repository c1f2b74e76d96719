"""PodTopologySpread: hard constraints filter by skew, soft ones score toward balance."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi.scheduler.framework import Code, PodInfo, Snapshot
from clusterapi.scheduler.plugins.pod_topology_spread import (
    ERR_REASON_CONSTRAINTS_NOT_MATCH,
    ERR_REASON_NODE_LABEL_NOT_MATCH,
    new,
)
from tests.clusterapi.scheduler.helpers import node, pod, snapshot, state

ZONE = "topology.kubernetes.io/zone"
APP = {"app": "web"}


def constraint(key: str = ZONE, skew: int = 1, when: str = "DoNotSchedule", **more: Any) -> dict:
    return {
        "maxSkew": skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": APP},
        **more,
    }


def zoned_cluster(counts: dict[str, int], extra_nodes: list[dict] = ()) -> Snapshot:  # type: ignore[assignment]
    """One node per zone, with ``counts[zone]`` matching pods on it."""
    nodes = [node(f"node-{z}", labels={ZONE: z}) for z in counts] + list(extra_nodes)
    pods = [
        pod(f"{z}-{i}", labels=APP, node_name=f"node-{z}")
        for z, count in counts.items()
        for i in range(count)
    ]
    return snapshot(nodes, pods)


def feasible(snap: Snapshot, incoming: dict) -> dict[str, tuple[str, ...]]:
    plugin = new({})
    p = PodInfo(incoming)
    s = state(snap)
    assert plugin.pre_filter(s, p) is None
    out = {}
    for name, n in snap.nodes.items():
        status = plugin.filter(s, p, n)
        out[name] = () if status is None else status.reasons
    return out


def test_skew_may_not_exceed_max_skew() -> None:
    snap = zoned_cluster({"a": 2, "b": 1, "c": 1})
    result = feasible(snap, pod("new", labels=APP, topologySpreadConstraints=[constraint()]))
    assert result == {
        "node-a": (ERR_REASON_CONSTRAINTS_NOT_MATCH,),  # 2 + 1 - 1 = 2 > 1
        "node-b": (),
        "node-c": (),
    }


def test_larger_max_skew_allows_more() -> None:
    snap = zoned_cluster({"a": 2, "b": 1, "c": 1})
    result = feasible(snap, pod("new", labels=APP, topologySpreadConstraints=[constraint(skew=2)]))
    assert all(not reasons for reasons in result.values())


def test_a_pod_not_matching_its_own_selector_counts_nothing_for_itself() -> None:
    snap = zoned_cluster({"a": 2, "b": 1, "c": 1})
    result = feasible(
        snap, pod("new", labels={"app": "other"}, topologySpreadConstraints=[constraint()])
    )
    assert result["node-a"] == ()  # 2 + 0 - 1 = 1


def test_nodes_without_the_topology_key_are_unresolvable() -> None:
    snap = zoned_cluster({"a": 0}, [node("bare")])
    plugin = new({})
    p = PodInfo(pod("new", labels=APP, topologySpreadConstraints=[constraint()]))
    s = state(snap)
    plugin.pre_filter(s, p)
    status = plugin.filter(s, p, snap.nodes["bare"])
    assert status is not None
    assert status.reasons == (ERR_REASON_NODE_LABEL_NOT_MATCH,)
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_min_domains_treats_the_minimum_as_zero_while_domains_are_missing() -> None:
    snap = zoned_cluster({"a": 1, "b": 1})
    spread = [constraint(minDomains=3)]
    result = feasible(snap, pod("new", labels=APP, topologySpreadConstraints=spread))
    # Only two zones exist: min is 0, so 1 + 1 - 0 = 2 > 1 everywhere.
    assert all(reasons == (ERR_REASON_CONSTRAINTS_NOT_MATCH,) for reasons in result.values())


def test_only_pods_of_the_same_namespace_and_not_terminating_count() -> None:
    snap = zoned_cluster({"a": 0, "b": 0})
    other_ns = PodInfo(pod("x", namespace="other", labels=APP, node_name="node-a"))
    snap.add_pod(other_ns, "node-a")
    dying = pod("y", labels=APP, node_name="node-a")
    dying["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    snap.add_pod(PodInfo(dying), "node-a")
    result = feasible(snap, pod("new", labels=APP, topologySpreadConstraints=[constraint()]))
    assert result == {"node-a": (), "node-b": ()}


def test_match_label_keys_narrow_the_selector_to_the_pods_own_values() -> None:
    nodes = [node("node-a", labels={ZONE: "a"}), node("node-b", labels={ZONE: "b"})]
    old = {**APP, "pod-template-hash": "old"}
    pods = [pod(f"o{i}", labels=old, node_name="node-a") for i in range(3)]
    snap = snapshot(nodes, pods)
    spread = [constraint(matchLabelKeys=["pod-template-hash"])]
    result = feasible(
        snap,
        pod("new", labels={**APP, "pod-template-hash": "new"}, topologySpreadConstraints=spread),
    )
    assert result == {"node-a": (), "node-b": ()}


def test_counts_follow_the_snapshot_incrementally() -> None:
    snap = zoned_cluster({"a": 0, "b": 0})
    incoming = pod("new", labels=APP, topologySpreadConstraints=[constraint()])
    assert feasible(snap, incoming) == {"node-a": (), "node-b": ()}
    snap.add_pod(PodInfo(pod("p1", labels=APP, node_name="node-a")), "node-a")
    assert feasible(snap, incoming)["node-a"] == (ERR_REASON_CONSTRAINTS_NOT_MATCH,)
    snap.add_pod(PodInfo(pod("p2", labels=APP, node_name="node-b")), "node-b")
    assert feasible(snap, incoming) == {"node-a": (), "node-b": ()}


def test_soft_constraints_score_emptier_domains_higher() -> None:
    snap = zoned_cluster({"a": 3, "b": 1, "c": 0})
    plugin = new({})
    p = PodInfo(
        pod("new", labels=APP, topologySpreadConstraints=[constraint(when="ScheduleAnyway")])
    )
    s = state(snap)
    pre = plugin.pre_filter(s, p)
    assert pre is not None and pre.code == Code.SKIP  # no hard constraint
    assert plugin.pre_score(s, p, list(snap.nodes.values())) is None
    raw = {name: plugin.score(s, p, n) for name, n in snap.nodes.items()}
    # count * ln(3 zones + 2) + (maxSkew - 1)
    assert raw == {"node-a": 5, "node-b": 2, "node-c": 0}
    plugin.normalize(s, p, raw)
    assert raw == {"node-a": 0, "node-b": 60, "node-c": 100}


def test_hostname_soft_constraints_count_on_the_node() -> None:
    snap = zoned_cluster({"a": 2, "b": 0})
    plugin = new({})
    spread = [constraint(key="kubernetes.io/hostname", when="ScheduleAnyway")]
    p = PodInfo(pod("new", labels=APP, topologySpreadConstraints=spread))
    s = state(snap)
    plugin.pre_score(s, p, list(snap.nodes.values()))
    raw = {name: plugin.score(s, p, n) for name, n in snap.nodes.items()}
    plugin.normalize(s, p, raw)
    assert raw["node-b"] == 100 and raw["node-a"] < raw["node-b"]


@pytest.mark.parametrize("policy", ["Honor", "Ignore"])
def test_node_affinity_policy_decides_which_nodes_count(policy: str) -> None:
    # Zone b holds two matching pods but the new pod's nodeSelector excludes it.
    nodes = [
        node("node-a", labels={ZONE: "a", "pool": "x"}),
        node("node-b", labels={ZONE: "b", "pool": "y"}),
    ]
    pods = [pod(f"b{i}", labels=APP, node_name="node-b") for i in range(2)]
    snap = snapshot(nodes, pods)
    spread = [constraint(nodeAffinityPolicy=policy)]
    incoming = pod("new", labels=APP, nodeSelector={"pool": "x"}, topologySpreadConstraints=spread)
    result = feasible(snap, incoming)
    # Honor: only zone a counts (min 0): 0 + 1 - 0 <= 1. Ignore: min over {a: 0, b: 2} is 0 too,
    # so node-a fits either way; node-b is over the skew only when b is counted.
    assert result["node-a"] == ()
    assert bool(result["node-b"]) == (policy == "Ignore")
