"""InterPodAffinity: pod affinity and anti-affinity over topology domains.

Filter, three checks, in upstream's order:

1. the pod's required affinity: every term must find a matching pod in the node's domain
   (the node must carry each term's ``topologyKey``). The first pod of a group that is
   affine to itself may go anywhere while no pod matches yet. Unresolvable.
2. the pod's required anti-affinity: no term may find a matching pod in the node's domain.
3. existing pods' required anti-affinity: no pod already placed may have a term that
   matches this pod in the node's domain.

Score: per domain, + the weight of each preferred affinity term of the pod matched by a pod
there, - for preferred anti-affinity, and symmetrically the existing pods' preferred terms
(and required affinity terms, at ``hardPodAffinityWeight``) that match the pod; a node's
raw score sums its domains, then min-max normalization maps it onto 0..100.

All counts are per ``(topologyKey, value)`` pair and kept in ``Snapshot.aggregate``, so only
nodes changed since the previous pod are recounted.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any, ClassVar

from clusterapi.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    AffinityTerm,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    unresolvable,
    unschedulable,
)

NAME = "InterPodAffinity"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
PRE_FILTER_KEY = "PreFilter" + NAME
PRE_SCORE_KEY = "PreScore" + NAME
DEFAULT_HARD_POD_AFFINITY_WEIGHT = 1

_AFFINITY = unresolvable(ERR_REASON_AFFINITY, plugin=NAME)
_ANTI = unschedulable(ERR_REASON_ANTI_AFFINITY, plugin=NAME)
_EXISTING = unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY, plugin=NAME)

Pair = tuple[str, str]


def _namespace_labels(state: CycleState, namespace: str) -> Mapping[str, str] | None:
    return state.snapshot.namespaces.get(namespace)


def matches_all(terms: Sequence[AffinityTerm], pod: PodInfo, ns_labels: Any) -> bool:
    return all(term.matches(pod, ns_labels) for term in terms)


def _bump(counts: dict[Hashable, int], node: NodeInfo, key: str, delta: int) -> None:
    value = node.labels.get(key)
    if value is not None:
        pair = (key, value)
        counts[pair] = counts.get(pair, 0) + delta


class PreFilterState:
    __slots__ = ("affinity", "anti_affinity", "existing_anti_affinity", "own_keys", "self_match")

    def __init__(
        self,
        existing_anti_affinity: dict[Hashable, int],
        affinity: dict[Hashable, int],
        anti_affinity: dict[Hashable, int],
        self_match: bool,
        own_keys: frozenset[str],
    ) -> None:
        self.existing_anti_affinity = existing_anti_affinity
        self.affinity = affinity
        self.anti_affinity = anti_affinity
        self.self_match = self_match
        # The topology keys of the pod's own required terms (a node must carry them).
        self.own_keys = own_keys

    def clone(self) -> PreFilterState:
        return PreFilterState(
            dict(self.existing_anti_affinity),
            dict(self.affinity),
            dict(self.anti_affinity),
            self.self_match,
            self.own_keys,
        )


class InterPodAffinity:
    NAME: ClassVar[str] = NAME
    # Filter answers depend on a node only through its labels for topology_keys().
    FILTER_BY_DOMAIN: ClassVar[bool] = True

    def __init__(self, hard_pod_affinity_weight: int = DEFAULT_HARD_POD_AFFINITY_WEIGHT) -> None:
        self.hard_weight = hard_pod_affinity_weight

    # -- filter --

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        snapshot = state.snapshot
        if (
            not pod.required_affinity
            and not pod.required_anti_affinity
            and not snapshot.pods_with_required_anti_affinity
        ):
            return SKIP
        ns_labels = _namespace_labels(state, pod.namespace)
        frozen_ns = frozenset((ns_labels or {}).items())
        labels = frozenset(pod.labels.items())

        def existing(node: NodeInfo) -> Mapping[Hashable, int]:
            out: dict[Hashable, int] = {}
            for other in node.pods_with_required_anti_affinity.values():
                for term in other.required_anti_affinity:
                    if term.matches(pod, ns_labels):
                        _bump(out, node, term.topology_key, 1)
            return out

        existing_counts = (
            snapshot.aggregate(("ipa-existing", pod.namespace, labels, frozen_ns), existing)
            if snapshot.pods_with_required_anti_affinity
            else {}
        )
        affinity_counts: dict[Hashable, int] = {}
        anti_counts: dict[Hashable, int] = {}
        if pod.required_affinity:
            terms = pod.required_affinity

            def affinity(node: NodeInfo) -> Mapping[Hashable, int]:
                out: dict[Hashable, int] = {}
                for other in node.pods.values():
                    if matches_all(terms, other, _namespace_labels(state, other.namespace)):
                        for term in terms:
                            _bump(out, node, term.topology_key, 1)
                return out

            affinity_counts = snapshot.aggregate(("ipa-affinity", terms), affinity)
        if pod.required_anti_affinity:
            anti_terms = pod.required_anti_affinity

            def anti(node: NodeInfo) -> Mapping[Hashable, int]:
                out: dict[Hashable, int] = {}
                for other in node.pods.values():
                    other_ns = _namespace_labels(state, other.namespace)
                    for term in anti_terms:
                        if term.matches(other, other_ns):
                            _bump(out, node, term.topology_key, 1)
                return out

            anti_counts = snapshot.aggregate(("ipa-anti", anti_terms), anti)
        self_match = matches_all(pod.required_affinity, pod, ns_labels)
        own_keys = frozenset(
            t.topology_key for t in pod.required_affinity + pod.required_anti_affinity
        )
        state.write(
            PRE_FILTER_KEY,
            PreFilterState(existing_counts, affinity_counts, anti_counts, self_match, own_keys),
        )
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: PreFilterState | None = state.read(PRE_FILTER_KEY)
        if s is None:
            return None
        labels = node.labels
        if pod.required_affinity:
            pods_exist = True
            for term in pod.required_affinity:
                value = labels.get(term.topology_key)
                if value is None:
                    return _AFFINITY  # every topology key must be on the node
                if s.affinity.get((term.topology_key, value), 0) <= 0:
                    pods_exist = False
            # The first pod of a self-affine group bootstraps it anywhere.
            if not pods_exist and not (not any(s.affinity.values()) and s.self_match):
                return _AFFINITY
        if pod.required_anti_affinity and s.anti_affinity:
            for term in pod.required_anti_affinity:
                value = labels.get(term.topology_key)
                if value is not None and s.anti_affinity.get((term.topology_key, value), 0) > 0:
                    return _ANTI
        if s.existing_anti_affinity:
            existing = s.existing_anti_affinity
            for pair in labels.items():
                if existing.get(pair, 0) > 0:
                    return _EXISTING
        return None

    def _update(
        self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int
    ) -> None:
        s: PreFilterState | None = state.read(PRE_FILTER_KEY)
        if s is None:
            return
        ns_labels = _namespace_labels(state, pod.namespace)
        other_ns = _namespace_labels(state, other.namespace)
        for term in other.required_anti_affinity:
            if term.matches(pod, ns_labels):
                _bump(s.existing_anti_affinity, node, term.topology_key, delta)
        if pod.required_affinity and matches_all(pod.required_affinity, other, other_ns):
            for term in pod.required_affinity:
                _bump(s.affinity, node, term.topology_key, delta)
        for term in pod.required_anti_affinity:
            if term.matches(other, other_ns):
                _bump(s.anti_affinity, node, term.topology_key, delta)

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None:
        self._update(state, pod, other, node, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None:
        self._update(state, pod, other, node, -1)

    # -- score --

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]
    ) -> Status | None:
        snapshot = state.snapshot
        has_preferred = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if not has_preferred and not snapshot.pods_with_affinity:
            return SKIP
        ns_labels = _namespace_labels(state, pod.namespace)
        hard_weight = self.hard_weight

        def contributions(node: NodeInfo) -> Mapping[Hashable, int]:
            out: dict[Hashable, int] = {}
            if not node.labels:
                return out
            others = node.pods if has_preferred else node.pods_with_affinity
            for other in others.values():
                other_ns = _namespace_labels(state, other.namespace)
                for term in pod.preferred_affinity:
                    if term.matches(other, other_ns):
                        _bump(out, node, term.topology_key, term.weight)
                for term in pod.preferred_anti_affinity:
                    if term.matches(other, other_ns):
                        _bump(out, node, term.topology_key, -term.weight)
                if hard_weight > 0:
                    for term in other.required_affinity:
                        if term.matches(pod, ns_labels):
                            _bump(out, node, term.topology_key, hard_weight)
                for term in other.preferred_affinity:
                    if term.matches(pod, ns_labels):
                        _bump(out, node, term.topology_key, term.weight)
                for term in other.preferred_anti_affinity:
                    if term.matches(pod, ns_labels):
                        _bump(out, node, term.topology_key, -term.weight)
            return out

        key = (
            "ipa-score",
            pod.namespace,
            frozenset(pod.labels.items()),
            frozenset((ns_labels or {}).items()),
            pod.preferred_affinity,
            pod.preferred_anti_affinity,
            hard_weight,
        )
        scores = snapshot.aggregate(key, contributions)
        if not scores:
            return SKIP
        state.write(PRE_SCORE_KEY, scores)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: dict[Hashable, int] = state.read(PRE_SCORE_KEY) or {}
        return sum(scores.get(pair, 0) for pair in node.labels.items())

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        if not scores:
            return
        low, high = min(scores.values()), max(scores.values())
        spread = high - low
        for name, value in scores.items():
            scores[name] = int(MAX_NODE_SCORE * (value - low) / spread) if spread > 0 else 0

    # -- incremental evaluation --

    @staticmethod
    def _counted_keys(state: CycleState) -> frozenset[str]:
        keys: set[str] = set()
        s: PreFilterState | None = state.read(PRE_FILTER_KEY)
        if s is not None:
            keys.update(s.own_keys)
            for counts in (s.existing_anti_affinity, s.affinity, s.anti_affinity):
                keys.update(str(pair[0]) for pair in counts if isinstance(pair, tuple))
        scores: dict[Hashable, int] | None = state.read(PRE_SCORE_KEY)
        if scores:
            keys.update(str(pair[0]) for pair in scores if isinstance(pair, tuple))
        return frozenset(keys)

    def memo_key(self, state: CycleState) -> Hashable:
        s: PreFilterState | None = state.read(PRE_FILTER_KEY)
        # Whether any pod matches the affinity terms decides the self-affinity bootstrap;
        # a topology key appearing or vanishing changes which domains a change reaches.
        bootstrap = None if s is None else (any(s.affinity.values()), s.self_match)
        return (bootstrap, self._counted_keys(state))

    def topology_keys(self, state: CycleState) -> Collection[str]:
        return self._counted_keys(state)


def new(args: Mapping[str, Any]) -> InterPodAffinity:
    return InterPodAffinity(
        int(args.get("hardPodAffinityWeight", DEFAULT_HARD_POD_AFFINITY_WEIGHT))
    )
