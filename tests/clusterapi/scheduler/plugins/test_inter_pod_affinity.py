"""InterPodAffinity: required (anti-)affinity filters, preferred terms score."""

from __future__ import annotations

from typing import Any

from clusterapi.scheduler.framework import Code, PodInfo, Snapshot
from clusterapi.scheduler.plugins.inter_pod_affinity import (
    ERR_REASON_AFFINITY,
    ERR_REASON_ANTI_AFFINITY,
    ERR_REASON_EXISTING_ANTI_AFFINITY,
    new,
)
from tests.clusterapi.scheduler.helpers import node, pod, snapshot, state

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def term(labels: dict[str, str], key: str = ZONE, **more: Any) -> dict:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **more}


def affinity(
    kind: str, *terms: dict[str, Any] | tuple[int, dict[str, Any]], preferred: bool = False
) -> dict:
    """Required terms are given as term dicts; preferred ones as (weight, term) pairs."""
    if preferred:
        weighted = [t for t in terms if isinstance(t, tuple)]
        assert len(weighted) == len(terms), "preferred terms are (weight, term) pairs"
        return {
            kind: {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": w, "podAffinityTerm": t} for w, t in weighted
                ]
            }
        }
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def cluster(*pods: dict) -> Snapshot:
    nodes = [
        node("a1", labels={ZONE: "a"}),
        node("a2", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}),
    ]
    return snapshot(nodes, list(pods))


def results(snap: Snapshot, incoming: dict) -> dict[str, tuple[str, ...]]:
    plugin = new({})
    p = PodInfo(incoming)
    s = state(snap)
    status = plugin.pre_filter(s, p)
    if status is not None and status.code == Code.SKIP:
        return {name: () for name in snap.nodes}
    return {
        name: () if (st := plugin.filter(s, p, n)) is None else st.reasons
        for name, n in snap.nodes.items()
    }


def test_required_affinity_needs_a_matching_pod_in_the_domain() -> None:
    snap = cluster(pod("db", labels={"app": "db"}, node_name="a2"))
    incoming = pod("web", affinity=affinity("podAffinity", term({"app": "db"})))
    assert results(snap, incoming) == {"a1": (), "a2": (), "b1": (ERR_REASON_AFFINITY,)}


def test_required_affinity_is_unresolvable() -> None:
    snap = cluster(pod("db", labels={"app": "db"}, node_name="a2"))
    plugin = new({})
    p = PodInfo(pod("web", affinity=affinity("podAffinity", term({"app": "db"}))))
    s = state(snap)
    plugin.pre_filter(s, p)
    status = plugin.filter(s, p, snap.nodes["b1"])
    assert status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_the_first_pod_of_a_self_affine_group_goes_anywhere() -> None:
    incoming = pod(
        "first", labels={"app": "cache"}, affinity=affinity("podAffinity", term({"app": "cache"}))
    )
    assert results(cluster(), incoming) == {"a1": (), "a2": (), "b1": ()}


def test_affinity_to_pods_that_do_not_exist_fails_everywhere() -> None:
    incoming = pod("web", affinity=affinity("podAffinity", term({"app": "db"})))
    assert set(results(cluster(), incoming).values()) == {(ERR_REASON_AFFINITY,)}


def test_required_anti_affinity_keeps_away_from_matching_pods() -> None:
    snap = cluster(pod("web-1", labels={"app": "web"}, node_name="a1"))
    incoming = pod(
        "web-2",
        labels={"app": "web"},
        affinity=affinity("podAntiAffinity", term({"app": "web"}, key=HOST)),
    )
    assert results(snap, incoming) == {"a1": (ERR_REASON_ANTI_AFFINITY,), "a2": (), "b1": ()}


def test_existing_pods_anti_affinity_is_respected() -> None:
    loner = pod(
        "loner",
        labels={"app": "loner"},
        node_name="a1",
        affinity=affinity("podAntiAffinity", term({"app": "web"})),
    )
    snap = cluster(loner)
    result = results(snap, pod("web", labels={"app": "web"}))
    assert result == {
        "a1": (ERR_REASON_EXISTING_ANTI_AFFINITY,),
        "a2": (ERR_REASON_EXISTING_ANTI_AFFINITY,),
        "b1": (),
    }


def test_terms_only_see_their_namespaces() -> None:
    snap = cluster(pod("db", namespace="other", labels={"app": "db"}, node_name="a1"))
    incoming = pod("web", affinity=affinity("podAffinity", term({"app": "db"})))
    assert set(results(snap, incoming).values()) == {(ERR_REASON_AFFINITY,)}
    across = pod("web", affinity=affinity("podAffinity", term({"app": "db"}, namespaces=["other"])))
    assert results(snap, across)["a2"] == ()


def test_namespace_selector_matches_namespace_labels() -> None:
    snap = cluster(pod("db", namespace="prod", labels={"app": "db"}, node_name="b1"))
    snap.set_namespace("prod", {"env": "prod"})
    incoming = pod(
        "web",
        affinity=affinity(
            "podAffinity", term({"app": "db"}, namespaceSelector={"matchLabels": {"env": "prod"}})
        ),
    )
    assert results(snap, incoming)["b1"] == ()


def score(snap: Snapshot, incoming: dict) -> dict[str, int]:
    plugin = new({})
    p = PodInfo(incoming)
    s = state(snap)
    status = plugin.pre_score(s, p, list(snap.nodes.values()))
    if status is not None and status.code == Code.SKIP:
        return {}
    raw = {name: plugin.score(s, p, n) for name, n in snap.nodes.items()}
    plugin.normalize(s, p, raw)
    return raw


def test_preferred_affinity_scores_the_domain_of_matching_pods() -> None:
    snap = cluster(pod("db", labels={"app": "db"}, node_name="b1"))
    incoming = pod(
        "web", affinity=affinity("podAffinity", (10, term({"app": "db"})), preferred=True)
    )
    assert score(snap, incoming) == {"a1": 0, "a2": 0, "b1": 100}


def test_preferred_anti_affinity_scores_away() -> None:
    snap = cluster(pod("web-1", labels={"app": "web"}, node_name="a1"))
    incoming = pod(
        "web-2", affinity=affinity("podAntiAffinity", (5, term({"app": "web"})), preferred=True)
    )
    assert score(snap, incoming) == {"a1": 0, "a2": 0, "b1": 100}


def test_existing_pods_required_affinity_attracts_matching_pods() -> None:
    fan = pod(
        "fan", node_name="a1", affinity=affinity("podAffinity", term({"app": "star"}, key=HOST))
    )
    snap = cluster(fan)
    assert score(snap, pod("star", labels={"app": "star"})) == {"a1": 100, "a2": 0, "b1": 0}


def test_no_terms_anywhere_skips_the_plugin() -> None:
    assert score(cluster(), pod("plain")) == {}
    assert set(results(cluster(), pod("plain")).values()) == {()}
