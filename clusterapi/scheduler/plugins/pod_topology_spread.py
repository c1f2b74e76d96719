"""PodTopologySpread: spread matching pods evenly across topology domains.

For each of the pod's ``topologySpreadConstraints`` the pods matching its ``labelSelector``
(in the pod's namespace, not terminating) are counted per domain, a domain being a value of
``topologyKey`` on the nodes. Only nodes that carry every constraint's key, match the pod's
required node affinity (``nodeAffinityPolicy: Honor``, the default) and, with
``nodeTaintsPolicy: Honor``, whose taints the pod tolerates take part.

Filter (``whenUnsatisfiable: DoNotSchedule``): on a node in domain *d*,
``count(d) + (1 if the pod matches its own selector) - min over domains <= maxSkew``; the
minimum is 0 while fewer than ``minDomains`` domains exist. A node without the key is
unresolvable; a skew violation can be fixed by preemption.

Score (``ScheduleAnyway``): per node, the sum over constraints of ``count(d) * ln(domains + 2)
+ (maxSkew - 1)``; then reversed so the emptiest domain scores 100.

Counting every pod of every node per pod would cost O(pods); the counts are kept in
``Snapshot.aggregate`` and only the nodes changed since the last pod are recounted.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from clusterapi.core.selectors import IN, LabelSelector, Requirement, SelectorError
from clusterapi.core.selectors import from_label_selector as _selector
from clusterapi.scheduler.framework import (
    DO_NOT_SCHEDULE,
    LABEL_HOSTNAME,
    MAX_NODE_SCORE,
    SKIP,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    first_untolerated,
    log_weight,
    unresolvable,
    unschedulable,
)

NAME = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
PRE_FILTER_KEY = "PreFilter" + NAME
PRE_SCORE_KEY = "PreScore" + NAME

_SKEW = unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH, plugin=NAME)
_NO_LABEL = unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH, plugin=NAME)


@dataclass(frozen=True, slots=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int
    honor_affinity: bool
    honor_taints: bool


def parse_constraints(pod: PodInfo, action: str) -> tuple[Constraint, ...]:
    """The pod's constraints with ``whenUnsatisfiable == action``, selectors parsed."""
    out = []
    for raw in pod.spread_constraints:
        if raw.get("whenUnsatisfiable", "DoNotSchedule") != action:
            continue
        try:
            selector = _selector(raw.get("labelSelector"))
        except SelectorError:
            continue
        # matchLabelKeys: the pod's own values of these labels narrow the selector.
        extra = [
            Requirement(key, IN, (pod.labels[key],))
            for key in raw.get("matchLabelKeys") or ()
            if key in pod.labels
        ]
        if extra:
            selector = selector.add(*extra)
        out.append(
            Constraint(
                max_skew=int(raw.get("maxSkew") or 1),
                topology_key=str(raw.get("topologyKey") or ""),
                selector=selector,
                min_domains=int(raw.get("minDomains") or 1),
                honor_affinity=raw.get("nodeAffinityPolicy", "Honor") == "Honor",
                honor_taints=raw.get("nodeTaintsPolicy", "Ignore") == "Honor",
            )
        )
    return tuple(out)


def count_matching(node: NodeInfo, namespace: str, selector: LabelSelector) -> int:
    return sum(
        1
        for p in node.pods.values()
        if not p.terminating and p.namespace == namespace and selector.matches(p.labels)
    )


def _included(pod: PodInfo, node: NodeInfo, constraint: Constraint) -> bool:
    required = pod.required_node_affinity
    if constraint.honor_affinity and required is not None and not required.matches(node):
        return False
    return not (
        constraint.honor_taints
        and node.taints
        and first_untolerated(node.taints, pod.tolerations, DO_NOT_SCHEDULE) is not None
    )


def _counts(
    state: CycleState, pod: PodInfo, constraint: Constraint, keys: tuple[str, ...], kind: str
) -> dict[Hashable, int]:
    """Matching pods per domain of ``constraint`` over all eligible nodes (kept current)."""
    aggregate_key = (
        kind,
        pod.namespace,
        constraint,
        keys,
        pod.required_node_affinity if constraint.honor_affinity else None,
        pod.tolerations if constraint.honor_taints else None,
    )
    namespace = pod.namespace

    def compute(node: NodeInfo) -> Mapping[Hashable, int]:
        labels = node.labels
        if any(k not in labels for k in keys) or not _included(pod, node, constraint):
            return {}
        return {
            labels[constraint.topology_key]: count_matching(node, namespace, constraint.selector)
        }

    return state.snapshot.aggregate(aggregate_key, compute)


class PreFilterState:
    """Hard constraints, matching pods per domain and the current minimum of each."""

    __slots__ = ("constraints", "counts", "keys", "minimums", "self_match")

    def __init__(
        self,
        constraints: tuple[Constraint, ...],
        counts: list[dict[Hashable, int]],
        self_match: tuple[int, ...],
        keys: tuple[str, ...],
    ) -> None:
        self.constraints = constraints
        self.counts = counts
        self.self_match = self_match
        self.keys = keys
        self.minimums: list[int] = []
        self.update_minimums()

    def update_minimums(self) -> None:
        self.minimums = [
            0 if len(counts) < c.min_domains or not counts else min(counts.values())
            for c, counts in zip(self.constraints, self.counts, strict=True)
        ]

    def clone(self) -> PreFilterState:
        return PreFilterState(
            self.constraints, [dict(c) for c in self.counts], self.self_match, self.keys
        )


class PreScoreState:
    __slots__ = ("constraints", "counts", "ignored", "weights")

    def __init__(
        self,
        constraints: tuple[Constraint, ...],
        counts: list[dict[Hashable, int] | None],
        weights: tuple[float, ...],
        ignored: frozenset[str],
    ) -> None:
        self.constraints = constraints
        self.counts = counts
        self.weights = weights
        self.ignored = ignored


class PodTopologySpread:
    NAME: ClassVar[str] = NAME
    # Filter answers depend on a node only through its labels for topology_keys().
    FILTER_BY_DOMAIN: ClassVar[bool] = True

    def __init__(self) -> None:
        self._parsed: dict[tuple[Hashable, ...], tuple[Constraint, ...]] = {}

    def _constraints(self, pod: PodInfo, action: str) -> tuple[Constraint, ...]:
        if not pod.spread_constraints:
            return ()
        key = (action, pod.affinity_signature, frozenset(pod.labels.items()))
        found = self._parsed.get(key)
        if found is None:
            if len(self._parsed) > 1024:
                self._parsed.clear()
            found = self._parsed[key] = parse_constraints(pod, action)
        return found

    # -- filter --

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        constraints = self._constraints(pod, "DoNotSchedule")
        if not constraints:
            return SKIP
        keys = tuple(sorted({c.topology_key for c in constraints}))
        counts = [_counts(state, pod, c, keys, "hard") for c in constraints]
        self_match = tuple(1 if c.selector.matches(pod.labels) else 0 for c in constraints)
        state.write(PRE_FILTER_KEY, PreFilterState(constraints, counts, self_match, keys))
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: PreFilterState | None = state.read(PRE_FILTER_KEY)
        if s is None:
            return None
        labels = node.labels
        for i, constraint in enumerate(s.constraints):
            value = labels.get(constraint.topology_key)
            if value is None:
                return _NO_LABEL
            skew = s.counts[i].get(value, 0) + s.self_match[i] - s.minimums[i]
            if skew > constraint.max_skew:
                return _SKEW
        return None

    def _update(
        self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int
    ) -> None:
        s: PreFilterState | None = state.read(PRE_FILTER_KEY)
        if s is None or other.namespace != pod.namespace or other.terminating:
            return
        if any(k not in node.labels for k in s.keys):
            return
        for i, constraint in enumerate(s.constraints):
            if not _included(pod, node, constraint) or not constraint.selector.matches(
                other.labels
            ):
                continue
            value = node.labels[constraint.topology_key]
            s.counts[i][value] = s.counts[i].get(value, 0) + delta
        s.update_minimums()

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None:
        self._update(state, pod, other, node, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None:
        self._update(state, pod, other, node, -1)

    # -- score --

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]
    ) -> Status | None:
        # Without constraints upstream applies cluster-wide defaults built from the Services
        # and controllers selecting the pod; Berth does not (yet): such pods are not scored.
        constraints = self._constraints(pod, "ScheduleAnyway")
        if not constraints or not nodes:
            return SKIP
        keys = tuple(sorted({c.topology_key for c in constraints}))
        ignored = frozenset(n.name for n in nodes if any(k not in n.labels for k in keys))
        counted = [n for n in nodes if n.name not in ignored]
        weights = []
        counts: list[dict[Hashable, int] | None] = []
        for constraint in constraints:
            if constraint.topology_key == LABEL_HOSTNAME:
                weights.append(log_weight(len(counted)))
                counts.append(None)  # counted on the node itself in score()
                continue
            domains = {n.labels[constraint.topology_key] for n in counted}
            weights.append(log_weight(len(domains)))
            counts.append(_counts(state, pod, constraint, keys, "soft"))
        state.write(PRE_SCORE_KEY, PreScoreState(constraints, counts, tuple(weights), ignored))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        s: PreScoreState = state.read(PRE_SCORE_KEY)
        if node.name in s.ignored:
            return 0
        total = 0.0
        for i, constraint in enumerate(s.constraints):
            value = node.labels.get(constraint.topology_key)
            if value is None:
                continue
            counts = s.counts[i]
            if counts is None:
                count = count_matching(node, pod.namespace, constraint.selector)
            else:
                count = counts.get(value, 0)
            total += count * s.weights[i] + (constraint.max_skew - 1)
        return math.floor(total + 0.5)

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        s: PreScoreState = state.read(PRE_SCORE_KEY)
        valid = [v for n, v in scores.items() if n not in s.ignored]
        if not valid:
            for name in scores:
                scores[name] = 0
            return
        low, high = min(valid), max(valid)
        for name, value in scores.items():
            if name in s.ignored:
                scores[name] = 0
            elif high == 0:
                scores[name] = MAX_NODE_SCORE
            else:
                scores[name] = MAX_NODE_SCORE * (high + low - value) // high

    # -- incremental evaluation --

    def memo_key(self, state: CycleState) -> Hashable:
        hard: PreFilterState | None = state.read(PRE_FILTER_KEY)
        soft: PreScoreState | None = state.read(PRE_SCORE_KEY)
        return (
            tuple(hard.minimums) if hard is not None else None,
            soft.weights if soft is not None else None,
        )

    def topology_keys(self, state: CycleState) -> Collection[str]:
        keys: set[str] = set()
        hard: PreFilterState | None = state.read(PRE_FILTER_KEY)
        soft: PreScoreState | None = state.read(PRE_SCORE_KEY)
        if hard is not None:
            keys.update(c.topology_key for c in hard.constraints)
        if soft is not None:
            keys.update(c.topology_key for c in soft.constraints)
        return keys


def new(args: Mapping[str, Any]) -> PodTopologySpread:
    return PodTopologySpread()
