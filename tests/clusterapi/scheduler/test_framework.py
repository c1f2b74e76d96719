"""The framework: default profile, the failure message, weights, tie-breaking, and the
incremental evaluation (which must always agree with evaluating afresh)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from clusterapi.scheduler.framework import (
    DEFAULT_FILTERS,
    Evaluation,
    Framework,
    Leaderboard,
    PodInfo,
    Snapshot,
    Status,
    default_profile,
    fit_error_message,
    unresolvable,
    unschedulable,
)
from tests.clusterapi.scheduler.helpers import container, node, pod, snapshot

ZONE = "topology.kubernetes.io/zone"


def test_the_default_profile_has_kubernetes_plugins_and_weights() -> None:
    framework = Framework(default_profile())
    assert [p.NAME for p in framework.filters] == list(DEFAULT_FILTERS)
    assert [(p.NAME, w) for p, w in framework.scores] == [
        ("TaintToleration", 3),
        ("NodeAffinity", 2),
        ("NodeResourcesFit", 1),
        ("PodTopologySpread", 2),
        ("InterPodAffinity", 2),
        ("NodeResourcesBalancedAllocation", 1),
    ]


def test_unknown_plugins_are_refused() -> None:
    profile = default_profile()
    with pytest.raises(ValueError, match="NoSuchPlugin"):
        Framework(type(profile)(filters=("NoSuchPlugin",)))


# --- the failure message ----------------------------------------------------------------------


def test_message_counts_reasons_and_sorts_them_as_strings() -> None:
    statuses = {
        "n1": unresolvable("node(s) were unschedulable"),
        "n2": unschedulable("Insufficient cpu"),
        "n3": unschedulable("Insufficient cpu"),
    }
    assert fit_error_message(3, statuses) == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
    )


def test_every_reason_of_a_node_counts_and_ten_sorts_before_two() -> None:
    statuses: dict[str, Status] = {
        f"a{i}": unschedulable("Insufficient cpu", "Insufficient memory") for i in range(10)
    }
    statuses |= {f"b{i}": unresolvable("node(s) had untolerated taint(s)") for i in range(2)}
    assert fit_error_message(12, statuses) == (
        "0/12 nodes are available: 10 Insufficient cpu, 10 Insufficient memory, "
        "2 node(s) had untolerated taint(s)."
    )


def test_message_with_preemption_suffix_and_prefilter_rejection() -> None:
    statuses = {"n1": unschedulable("Insufficient cpu")}
    post = "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    assert fit_error_message(1, statuses, post_filter_msg=post) == (
        "0/1 nodes are available: 1 Insufficient cpu. " + post
    )
    assert fit_error_message(2, {}, pre_filter_msg="something upstream") == (
        "0/2 nodes are available: something upstream."
    )
    assert fit_error_message(0, {}) == "no nodes available to schedule pods"


# --- choosing a node ---------------------------------------------------------------------------


def evaluate(snap: Snapshot, incoming: dict[str, Any], memo: Evaluation | None = None) -> Any:
    return Framework(default_profile()).evaluate(PodInfo(incoming), snap, memo)


def test_taint_preference_outweighs_free_resources() -> None:
    prefer = [{"key": "spot", "value": "1", "effect": "PreferNoSchedule"}]
    snap = snapshot(
        [node("tainted", taints=prefer), node("busy")],
        [pod("x", cpu="2", memory="4Gi", node_name="busy")],
    )
    result = evaluate(snap, pod("p", cpu="100m", memory="128Mi"))
    assert set(result.totals) == {"tainted", "busy"}
    assert result.best(random.Random(0)) == "busy"


def test_infeasible_nodes_get_their_first_failing_filter() -> None:
    snap = snapshot(
        [node("cordoned", unschedulable=True), node("small", cpu="1"), node("small2", cpu="1")]
    )
    result = evaluate(snap, pod("p", cpu="2"))
    assert not result.totals
    assert result.message() == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
    )


def test_ties_are_broken_at_random_but_deterministically_per_seed() -> None:
    snap = snapshot([node(f"n{i}") for i in range(20)])
    result = evaluate(snap, pod("p", cpu="100m"))
    assert len(set(result.totals.values())) == 1  # all equal
    first = [result.best(random.Random(42)) for _ in range(5)]
    again = [result.best(random.Random(42)) for _ in range(5)]
    assert first == again
    rng = random.Random(7)
    picks = {result.best(rng) for _ in range(200)}
    assert len(picks) > 10  # spread over the tied nodes


def test_nominated_pods_keep_their_room_from_lower_priority_pods() -> None:
    snap = snapshot([node("n1", cpu="2"), node("n2", cpu="2")])
    waiting = PodInfo(pod("important", cpu="2", priority=100))
    snap.nominate(waiting, "n1")
    low = evaluate(snap, pod("low", cpu="1", priority=1))
    assert set(low.totals) == {"n2"}
    assert low.statuses["n1"].reasons == ("Insufficient cpu",)
    high = evaluate(snap, pod("higher", cpu="1", priority=1000))
    assert set(high.totals) == {"n1", "n2"}


def test_leaderboard_picks_among_the_best_only() -> None:
    board = Leaderboard()
    for name, total in [("a", 5), ("b", 9), ("c", 9), ("d", 1)]:
        board.set(name, total)
    rng = random.Random(1)
    assert {board.best(rng) for _ in range(50)} == {"b", "c"}
    board.set("c", 2)
    board.remove("b")
    assert board.best(rng) == "a"
    assert board.best(rng, exclude={"a"}) == "c"


# --- incremental evaluation -------------------------------------------------------------------


def _shapes() -> list[dict[str, Any]]:
    spread = {
        "maxSkew": 1,
        "topologyKey": ZONE,
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "spread"}},
    }
    soft = {
        **spread,
        "whenUnsatisfiable": "ScheduleAnyway",
        "topologyKey": "kubernetes.io/hostname",
    }
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "anti"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ],
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 5,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "spread"}},
                        "topologyKey": ZONE,
                    },
                }
            ],
        }
    }
    prefer_zone = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 7,
                    "preference": {
                        "matchExpressions": [{"key": ZONE, "operator": "In", "values": ["z0"]}]
                    },
                }
            ]
        }
    }
    rack_affine = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "rack"}}, "topologyKey": "rack"}
            ]
        }
    }
    port = container("100m", "64Mi", ports=[{"containerPort": 80, "hostPort": 8080}])
    return [
        {"cpu": "300m", "memory": "256Mi"},
        {
            "cpu": "1",
            "memory": "1Gi",
            "labels": {"app": "spread"},
            "topologySpreadConstraints": [spread],
        },
        {"cpu": "200m", "labels": {"app": "spread"}, "topologySpreadConstraints": [soft]},
        {"cpu": "100m", "labels": {"app": "anti"}, "affinity": anti},
        {"memory": "512Mi", "affinity": prefer_zone, "tolerations": [{"operator": "Exists"}]},
        {"containers": [port]},
        {"cpu": "100m", "labels": {"app": "rack"}, "affinity": rack_affine},
        {
            "cpu": "100m",
            "labels": {"app": "multi"},
            "topologySpreadConstraints": [
                {**spread, "labelSelector": {"matchLabels": {"app": "multi"}}},
                {
                    **spread,
                    "topologyKey": "kubernetes.io/hostname",
                    "maxSkew": 2,
                    "labelSelector": {"matchLabels": {"app": "multi"}},
                },
            ],
        },
        {},
    ]


@pytest.mark.parametrize("seed", [20300101, 7, 4242])
def test_incremental_evaluation_always_equals_a_fresh_one(seed: int) -> None:
    """Schedule a random mix of pod shapes while the cluster changes under them; the memo
    must give exactly what evaluating from scratch gives, every time."""
    rng = random.Random(seed)
    framework = Framework(default_profile())
    nodes = [
        node(
            f"n{i}",
            cpu=rng.choice(["2", "4"]),
            memory=rng.choice(["4Gi", "8Gi"]),
            pods="12",
            labels={ZONE: f"z{i % 3}", **({"rack": f"r{i % 2}"} if i % 3 else {})},
            taints=[{"key": "spot", "value": "1", "effect": "PreferNoSchedule"}]
            if i % 4 == 0
            else None,
        )
        for i in range(12)
    ]
    snap = snapshot(nodes)
    memos: dict[Any, Evaluation] = {}
    placed: list[PodInfo] = []
    shapes = _shapes()
    for step in range(400):
        shape = dict(rng.choice(shapes))
        labels = shape.pop("labels", {})
        candidate = PodInfo(pod(f"p{step}", labels=labels, **shape))
        memo = memos.setdefault(candidate.signature, Evaluation())
        incremental = framework.evaluate(candidate, snap, memo)
        fresh = framework.evaluate(candidate, snap)
        assert incremental.totals == fresh.totals, step
        assert {n: s.reasons for n, s in incremental.statuses.items()} == {
            n: s.reasons for n, s in fresh.statuses.items()
        }, step
        chosen = incremental.best(rng)
        if chosen is not None:
            bound = PodInfo(pod(f"p{step}", labels=labels, node_name=chosen, **shape))
            snap.add_pod(bound, chosen)
            placed.append(bound)
        # The cluster changes under the scheduler now and then.
        roll = rng.random()
        if roll < 0.15 and placed:
            gone = placed.pop(rng.randrange(len(placed)))
            snap.remove_pod(gone, gone.node_name)
        elif roll < 0.18:
            victim = rng.choice(nodes)
            victim["spec"]["unschedulable"] = not victim["spec"].get("unschedulable", False)
            snap.set_node(victim)
        elif roll < 0.19:
            extra = node(f"late{step}", labels={ZONE: f"z{step % 3}"})
            nodes.append(extra)
            snap.set_node(extra)
