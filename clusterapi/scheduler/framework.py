"""The scheduling framework: what plugins see, what they implement, and how a cycle runs.

Data
----
The cluster as plugins read it, ``PodInfo``, ``NodeInfo`` and the ``Snapshot`` (kept
current by the cache), lives in ``clusterapi.scheduler.snapshot`` and is re-exported here,
so plugins import everything they use from this module. ``CycleState`` is per-pod scratch
data that PreFilter/PreScore hand to Filter/Score.

Plugins
-------
Each plugin (one module per plugin in ``clusterapi.scheduler.plugins``) has a ``NAME`` and
implements some of the extension points as methods: ``pre_filter``, ``filter``,
``pre_score``, ``score``, ``normalize`` (the ``Protocol`` classes below), plus
``add_pod``/``remove_pod`` for preemption's what-if runs. A plugin whose per-node answers
depend on more than the node itself (topology spread, inter-pod affinity) declares it with
``memo_key`` (the cluster-wide inputs of its answers) and ``topology_keys`` (nodes sharing a
value of these labels share a domain), so the incremental evaluation below stays exact.

Flow of one cycle (``Framework.evaluate``)
------------------------------------------
1. PreFilter: each filter plugin prepares state, may ``SKIP`` itself or reject the pod.
2. Filter: each remaining plugin answers per node; the first failure is the node's status.
3. PreScore / Score on the feasible nodes; NormalizeScore maps a plugin's scores onto
   0..100; each is multiplied by the plugin's weight and summed.
4. ``select_host`` picks the highest total, breaking ties at random (seeded in tests).

The same pod shape is scheduled over and over (a Deployment's replicas, a batch of jobs).
``Evaluation`` keeps the per-plugin answers of the previous pod with the same signature, and
the next one re-asks only for nodes that changed since (usually the one node the previous pod
went to) or, for cluster-scoped plugins, for nodes in the domains that changed. That is what
makes a batch of thousands of pods cost little more than their binds.
"""

from __future__ import annotations

import enum
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, cast

from clusterapi.scheduler.snapshot import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    DEFAULT_SCHEDULER_NAME,
    DO_NOT_SCHEDULE,
    LABEL_HOSTNAME,
    LABEL_ZONE,
    TAINT_UNSCHEDULABLE,
    AffinityTerm,
    NodeAggregate,
    NodeInfo,
    NodeSelectorTerm,
    PodInfo,
    PreferredTerm,
    RequiredNodeAffinity,
    Snapshot,
    Taint,
    Toleration,
    first_untolerated,
    more_important,
    pod_requests,
    tolerated,
)

Obj = dict[str, Any]

MAX_NODE_SCORE = 100
# --- status ---------------------------------------------------------------------------------


class Code(enum.IntEnum):
    """Upstream's status codes, in upstream's order."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's answer when it is not plain success (success is ``None``)."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def with_plugin(self, plugin: str) -> Status:
        return self if self.plugin == plugin else Status(self.code, self.reasons, plugin)


SKIP = Status(Code.SKIP)


def unschedulable(*reasons: str, plugin: str = "") -> Status:
    """Rejected here, but preemption might help (resources, ports, anti-affinity)."""
    return Status(Code.UNSCHEDULABLE, reasons, plugin)


def unresolvable(*reasons: str, plugin: str = "") -> Status:
    """Rejected here whatever is preempted (labels, taints, node name)."""
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)


# --- cycle state ----------------------------------------------------------------------------


class StateData(Protocol):
    def clone(self) -> StateData: ...


class CycleState:
    """Scratch data of one pod's cycle, keyed by plugin (``"PreFilter" + NAME`` style)."""

    __slots__ = ("_data", "snapshot")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._data: dict[str, Any] = {}

    def read(self, key: str) -> Any:
        return self._data.get(key)

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def clone(self) -> CycleState:
        """A copy for a what-if run: data with a ``clone`` method is copied, the rest shared."""
        copy = CycleState(self.snapshot)
        for key, value in self._data.items():
            cloner = getattr(value, "clone", None)
            copy._data[key] = cloner() if callable(cloner) else value
        return copy


# --- plugin protocols -----------------------------------------------------------------------


class Plugin(Protocol):
    NAME: ClassVar[str]


class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        """Prepare state; ``SKIP`` when the plugin has nothing to check for this pod."""


class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None when the pod may run on ``node``; else why not."""


class PreFilterExtensions(Plugin, Protocol):
    """What-if support for preemption: adjust the PreFilter state for a pod added/removed."""

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None: ...

    def remove_pod(
        self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo
    ) -> None: ...


class PreScorePlugin(Plugin, Protocol):
    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Collection[NodeInfo]
    ) -> Status | None:
        """Prepare scoring over the feasible ``nodes``; ``SKIP`` to contribute nothing."""


class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        """The node's raw score for this pod."""


class NormalizeScorePlugin(ScorePlugin, Protocol):
    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        """Map raw scores (node name -> score) onto 0..MAX_NODE_SCORE, in place."""


class ClusterScoped(Plugin, Protocol):
    """A plugin whose per-node answers depend on other nodes (see the module docstring)."""

    def memo_key(self, state: CycleState) -> Hashable:
        """The cluster-wide inputs of the per-node answers: when it changes, all change."""

    def topology_keys(self, state: CycleState) -> Collection[str]:
        """Label keys whose domains share answers: a change to a node affects its domain."""


def _has(plugin: object, method: str) -> bool:
    return callable(getattr(plugin, method, None))


def default_normalize(scores: dict[str, int], *, reverse: bool = False) -> None:
    """``DefaultNormalizeScore``: scale to 0..100 by the maximum (reversed: 100 - that)."""
    if not scores:
        return
    top = max(scores.values())
    if top <= 0:
        if reverse:
            for name in scores:
                scores[name] = MAX_NODE_SCORE
        return
    if reverse:
        for name, value in scores.items():
            scores[name] = MAX_NODE_SCORE - MAX_NODE_SCORE * value // top
    else:
        for name, value in scores.items():
            scores[name] = MAX_NODE_SCORE * value // top


# --- profiles -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """One scheduler profile (``KubeSchedulerConfiguration.profiles[]``)."""

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    filters: tuple[str, ...] = ()
    scores: tuple[tuple[str, int], ...] = ()
    plugin_args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    preemption: bool = True


# The default plugins in upstream's order, with upstream's default score weights.
DEFAULT_FILTERS = (
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "PodTopologySpread",
    "InterPodAffinity",
)
DEFAULT_SCORES = (
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("NodeResourcesBalancedAllocation", 1),
)


def default_profile(scoring_strategy: str = "LeastAllocated", **plugin_args: Any) -> Profile:
    """The default profile; ``scoring_strategy="MostAllocated"`` bin-packs instead."""
    args: dict[str, Mapping[str, Any]] = {
        "NodeResourcesFit": {"scoringStrategy": {"type": scoring_strategy}},
    }
    args.update(plugin_args)
    return Profile(filters=DEFAULT_FILTERS, scores=DEFAULT_SCORES, plugin_args=args)


# --- the failure message --------------------------------------------------------------------


def fit_error_message(
    num_nodes: int,
    statuses: Mapping[str, Status],
    *,
    pre_filter_msg: str = "",
    post_filter_msg: str = "",
) -> str:
    """``FitError.Error()``: ``0/3 nodes are available: 1 node(s) were unschedulable, 2
    Insufficient cpu.`` Each node's reasons are counted; the ``"<count> <reason>"`` strings
    are sorted as strings, as upstream does. A PostFilter (preemption) message follows."""
    if num_nodes == 0 and not statuses:
        return "no nodes available to schedule pods"
    message = f"0/{num_nodes} nodes are available:"
    if pre_filter_msg:
        message += f" {pre_filter_msg}."
    else:
        histogram = Counter(reason for s in statuses.values() for reason in s.reasons)
        parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
        if parts:
            message += " " + ", ".join(parts) + "."
    if post_filter_msg:
        message += " " + post_filter_msg
    return message


# --- evaluation -----------------------------------------------------------------------------


class Leaderboard:
    """Feasible nodes by total score, for picking the best in O(ties) rather than O(nodes).

    Nodes with the same total share a bucket (a list, with each node's index kept so it can
    leave in O(1)); the best bucket is the highest key. A pod moves one or two nodes between
    buckets, so choosing among thousands of equal nodes stays cheap.
    """

    __slots__ = ("buckets", "index", "totals")

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.buckets: dict[int, list[str]] = {}
        self.index: dict[str, int] = {}

    def clear(self) -> None:
        self.totals.clear()
        self.buckets.clear()
        self.index.clear()

    def remove(self, name: str) -> None:
        total = self.totals.pop(name, None)
        if total is None:
            return
        bucket = self.buckets[total]
        i = self.index.pop(name)
        last = bucket.pop()
        if last != name:
            bucket[i] = last
            self.index[last] = i
        if not bucket:
            del self.buckets[total]

    def set(self, name: str, total: int) -> None:
        if self.totals.get(name) == total:
            return
        self.remove(name)
        self.totals[name] = total
        bucket = self.buckets.setdefault(total, [])
        self.index[name] = len(bucket)
        bucket.append(name)

    def best(self, rng: random.Random, exclude: Collection[str] = ()) -> str | None:
        """The highest total, a random one among equals (``selectHost``)."""
        for total in sorted(self.buckets, reverse=True):
            bucket = self.buckets[total]
            if exclude:
                bucket = [n for n in bucket if n not in exclude]
                if not bucket:
                    continue
            return bucket[0] if len(bucket) == 1 else bucket[rng.randrange(len(bucket))]
        return None


class Evaluation:
    """Per-plugin answers for one pod signature, refreshed incrementally (module docstring)."""

    __slots__ = (
        "board",
        "domain_keys",
        "domains",
        "epoch",
        "failing",
        "failures",
        "feasible",
        "filter_keys",
        "filters",
        "norm",
        "raw",
        "score_keys",
        "scores",
        "stash",
        "version",
    )

    def __init__(self) -> None:
        self.epoch = -1
        self.version = -1
        self.filters: tuple[FilterPlugin, ...] = ()
        self.filter_keys: list[Hashable] = []
        # Per active filter: the nodes it rejects, with its status.
        self.failures: list[dict[str, Status]] = []
        # Per active filter answering per domain: the label keys and each domain's answer.
        self.domain_keys: list[tuple[str, ...]] = []
        self.domains: list[dict[tuple[str | None, ...], Status | None]] = []
        self.feasible: dict[str, NodeInfo] = {}
        self.scores: tuple[tuple[ScorePlugin, int], ...] = ()
        self.score_keys: list[Hashable] = []
        self.raw: list[dict[str, int]] = []
        # Per scorer: raw scores of nodes that left the feasible set, kept while unchanged.
        self.stash: list[dict[str, int]] = []
        self.norm: list[dict[str, int] | None] = []
        self.board = Leaderboard()
        # How many active filters reject each node (absent: none, so it is feasible).
        self.failing: dict[str, int] = {}

    def record_failure(self, i: int, name: str, status: Status | None) -> None:
        """Set filter ``i``'s answer for a node, keeping the per-node rejection count."""
        failures = self.failures[i]
        had = name in failures
        if status is None:
            if had:
                del failures[name]
                left = self.failing[name] - 1
                if left:
                    self.failing[name] = left
                else:
                    del self.failing[name]
            return
        failures[name] = status
        if not had:
            self.failing[name] = self.failing.get(name, 0) + 1


@dataclass
class Result:
    """The outcome of evaluating one pod against the snapshot.

    ``board`` ranks the feasible nodes (it belongs to the memo: read it before the next
    evaluation of the same pod shape); ``blocked`` are feasible nodes whose room is held
    for nominated pods of higher priority.
    """

    board: Leaderboard
    statuses: dict[str, Status]
    num_nodes: int
    pre_filter_status: Status | None = None
    state: CycleState | None = None
    blocked: frozenset[str] = frozenset()

    @property
    def totals(self) -> dict[str, int]:
        """Node name -> weighted score of every node the pod fits."""
        if self.blocked:
            return {n: t for n, t in self.board.totals.items() if n not in self.blocked}
        return self.board.totals

    def fits(self, name: str) -> bool:
        return name in self.board.totals and name not in self.blocked

    def best(self, rng: random.Random) -> str | None:
        return self.board.best(rng, self.blocked)

    def message(self, post_filter_msg: str = "") -> str:
        pre = self.pre_filter_status.message if self.pre_filter_status is not None else ""
        return fit_error_message(
            self.num_nodes, self.statuses, pre_filter_msg=pre, post_filter_msg=post_filter_msg
        )


_NO_KEY: Hashable = ()


class Framework:
    """A profile's plugins, instantiated, and the cycle that runs them (module docstring)."""

    def __init__(
        self, profile: Profile, registry: Mapping[str, Callable[..., Plugin]] | None = None
    ):
        if registry is None:
            from clusterapi.scheduler.plugins import IN_TREE

            registry = IN_TREE
        self.profile = profile
        self.plugins: dict[str, Plugin] = {}
        for name in itertools.chain(profile.filters, (n for n, _ in profile.scores)):
            if name not in self.plugins:
                factory = registry.get(name)
                if factory is None:
                    raise ValueError(f"unknown scheduler plugin {name!r}")
                self.plugins[name] = factory(profile.plugin_args.get(name, {}))
        self.filters: tuple[FilterPlugin, ...] = tuple(
            cast(FilterPlugin, p) for n in profile.filters if _has(p := self.plugins[n], "filter")
        )
        self.scores: tuple[tuple[ScorePlugin, int], ...] = tuple(
            (cast(ScorePlugin, p), w)
            for n, w in profile.scores
            if _has(p := self.plugins[n], "score")
        )
        # Which extension points each plugin implements, looked up once: isinstance() on a
        # runtime-checkable Protocol costs more than a whole Filter call.
        plugins = self.plugins.values()
        self._pre_filters = {p.NAME for p in plugins if _has(p, "pre_filter")}
        self._pre_scores = {p.NAME for p in plugins if _has(p, "pre_score")}
        self._normalizers = {p.NAME for p in plugins if _has(p, "normalize")}
        self._cluster_scoped = {p.NAME for p in plugins if _has(p, "memo_key")}
        self._domain_filters = {
            p.NAME for p in plugins if getattr(p, "FILTER_BY_DOMAIN", False) and _has(p, "memo_key")
        }
        self.extensions = {p.NAME for p in plugins if _has(p, "add_pod")}

    # -- single node helpers (preemption) --

    def pre_filter(
        self, state: CycleState, pod: PodInfo
    ) -> tuple[list[FilterPlugin], Status | None]:
        active: list[FilterPlugin] = []
        for plugin in self.filters:
            if plugin.NAME in self._pre_filters:
                status = cast(PreFilterPlugin, plugin).pre_filter(state, pod)
                if status is not None:
                    if status.code == Code.SKIP:
                        continue
                    return active, status.with_plugin(plugin.NAME)
            active.append(plugin)
        return active, None

    @staticmethod
    def run_filters(
        filters: Sequence[FilterPlugin], state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> Status | None:
        for plugin in filters:
            status = plugin.filter(state, pod, node)
            if status is not None:
                return status.with_plugin(plugin.NAME)
        return None

    def filters_with_nominated(
        self, filters: Sequence[FilterPlugin], state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> Status | None:
        """``RunFilterPluginsWithNominatedPods``: with the node's nominated pods of at least
        this pod's priority added (so they keep the room preemption made for them), then
        without them; both must pass."""
        nominated = [
            p
            for p in state.snapshot.nominated.get(node.name, {}).values()
            if p.uid != pod.uid and p.priority >= pod.priority
        ]
        if nominated:
            with_nominated = node.clone()
            added = state.clone()
            for other in nominated:
                with_nominated.add_pod(other)
                for plugin in filters:
                    if plugin.NAME in self.extensions:
                        cast(PreFilterExtensions, plugin).add_pod(added, pod, other, with_nominated)
            status = self.run_filters(filters, added, pod, with_nominated)
            if status is not None:
                return status
        return self.run_filters(filters, state, pod, node)

    # -- the cycle --

    def evaluate(self, pod: PodInfo, snapshot: Snapshot, memo: Evaluation | None = None) -> Result:
        """Filter and score every node for ``pod`` (see the module docstring).

        ``memo`` carries the answers for the previous pod of the same signature; it is
        refreshed in place. Without one, everything is computed afresh.
        """
        state = CycleState(snapshot)
        nodes = snapshot.nodes
        num_nodes = snapshot.num_nodes()
        active, rejected = self.pre_filter(state, pod)
        if rejected is not None:
            everywhere = {n: rejected for n, info in nodes.items() if info.node is not None}
            return Result(Leaderboard(), everywhere, num_nodes, rejected, state)
        ev = memo if memo is not None else Evaluation()
        filters = tuple(active)
        filter_keys = [self._memo_key(p, state) for p in filters]
        changed: set[str] | None = None
        if ev.epoch == snapshot.epoch and ev.filters == filters:
            changed = snapshot.changed_since(ev.version)
        if changed is None:
            ev.filters = filters
            ev.filter_keys = [_NO_KEY for _ in filters]
            ev.failures = [{} for _ in filters]
            ev.domain_keys = [() for _ in filters]
            ev.domains = [{} for _ in filters]
            ev.failing = {}
            ev.feasible = {}
            ev.scores, ev.score_keys, ev.raw, ev.stash, ev.norm = (), [], [], [], []
            ev.board.clear()
        everything = changed is None
        since: set[str] = changed or set()

        # 1. Filter: re-ask each plugin for the nodes whose answer may have changed, and
        # note the nodes whose answer did change ("flipped").
        flipped: set[str] = set()
        for i, fplugin in enumerate(filters):
            refilter_all = everything or ev.filter_keys[i] != filter_keys[i]
            if fplugin.NAME in self._domain_filters:
                self._filter_domains(ev, i, fplugin, state, pod, since, refilter_all, flipped)
                continue
            refilter: Collection[str] = (
                nodes if refilter_all else self._expand(since, fplugin, state, snapshot)
            )
            failures = ev.failures[i]
            for name in refilter:
                info = nodes.get(name)
                status = (
                    None if info is None or info.node is None else fplugin.filter(state, pod, info)
                )
                if failures.get(name) != status:
                    ev.record_failure(i, name, status)
                    flipped.add(name)
        ev.filter_keys = filter_keys
        touched: Collection[str] = (
            snapshot.names() | ev.feasible.keys() if everything else flipped | since
        )
        newly_feasible: set[str] = set()
        newly_infeasible: set[str] = set()
        feasible = ev.feasible
        failing = ev.failing
        for name in touched:
            info = nodes.get(name)
            if info is not None and info.node is not None and not failing.get(name):
                if name not in feasible:
                    newly_feasible.add(name)
                feasible[name] = info
            elif feasible.pop(name, None) is not None:
                newly_infeasible.add(name)
        ev.epoch, ev.version = snapshot.epoch, snapshot.version
        if not feasible:
            # Nothing to score; the next pod of this shape scores afresh.
            ev.scores = ()
            ev.board.clear()
            return Result(ev.board, self.diagnose(ev, snapshot), num_nodes, None, state)

        # 2. PreScore and Score the feasible nodes, again only where answers may change.
        scorers: list[tuple[ScorePlugin, int]] = []
        for splugin, weight in self.scores:
            if splugin.NAME in self._pre_scores:
                status = cast(PreScorePlugin, splugin).pre_score(state, pod, feasible.values())
                if status is not None and status.code == Code.SKIP:
                    continue
            scorers.append((splugin, weight))
        scorer_tuple = tuple(scorers)
        score_keys = [self._memo_key(p, state) for p, _ in scorers]
        all_totals = everything or ev.scores != scorer_tuple
        if all_totals:
            ev.scores = scorer_tuple
            ev.score_keys = [_NO_KEY for _ in scorers]
            ev.raw = [{} for _ in scorers]
            ev.stash = [{} for _ in scorers]
            ev.norm = [None for _ in scorers]
        total_dirty: set[str] = newly_feasible | newly_infeasible
        for j, (splugin, _weight) in enumerate(scorers):
            raw = ev.raw[j]
            stash = ev.stash[j]
            rescore: Collection[str]
            raw_changed = bool(newly_feasible or newly_infeasible)
            if all_totals or ev.score_keys[j] != score_keys[j]:
                raw.clear()
                stash.clear()
                rescore = feasible
                all_totals = raw_changed = True
            else:
                # A node leaving the feasible set keeps its score aside: when it comes back
                # unchanged (a spread domain reopening), it need not be scored again.
                for name in newly_infeasible:
                    value = raw.pop(name, None)
                    if value is not None:
                        stash[name] = value
                stale = self._expand(since, splugin, state, snapshot)
                for name in stale:
                    stash.pop(name, None)
                rescore = set(stale)
                for name in newly_feasible:
                    value = stash.pop(name, None)
                    if value is None:
                        rescore.add(name)
                    else:
                        raw[name] = value
            for name in rescore:
                info = feasible.get(name)
                if info is None:
                    raw.pop(name, None)
                    continue
                value = splugin.score(state, pod, info)
                if raw.get(name) != value:
                    raw[name] = value
                    raw_changed = True
                    total_dirty.add(name)
            if splugin.NAME in self._normalizers:
                previous = ev.norm[j]
                if previous is not None and not raw_changed:
                    continue  # same raw scores, same state: the same normalized scores
                normalized = dict(raw)
                cast(NormalizeScorePlugin, splugin).normalize(state, pod, normalized)
                if previous is None:
                    all_totals = True
                elif not all_totals and previous != normalized:
                    total_dirty |= {n for n, v in normalized.items() if previous.get(n) != v}
                ev.norm[j] = normalized
        ev.score_keys = score_keys

        # 3. Weighted totals, ranked.
        contributions: list[tuple[dict[str, int], int]] = []
        for j, (_p, weight) in enumerate(scorers):
            norm = ev.norm[j]
            contributions.append((norm if norm is not None else ev.raw[j], weight))
        board = ev.board
        if all_totals:
            board.clear()
            names: Iterable[str] = feasible
        else:
            names = total_dirty
        for name in names:
            if name in feasible:
                board.set(name, sum(c.get(name, 0) * w for c, w in contributions))
            else:
                board.remove(name)

        # 4. Nominated pods keep the room preemption freed for them from lower priorities.
        statuses: dict[str, Status] = {}
        blocked: dict[str, Status] = {}
        for node_name in snapshot.nominated:
            info = feasible.get(node_name)
            if info is not None:
                status = self.filters_with_nominated(filters, state, pod, info)
                if status is not None:
                    blocked[node_name] = status
        if blocked:
            statuses.update(blocked)
            if len(blocked) >= len(feasible):
                statuses.update(self.diagnose(ev, snapshot))
        return Result(board, statuses, num_nodes, None, state, frozenset(blocked))

    def _filter_domains(
        self,
        ev: Evaluation,
        i: int,
        plugin: FilterPlugin,
        state: CycleState,
        pod: PodInfo,
        since: set[str],
        refilter_all: bool,
        flipped: set[str],
    ) -> None:
        """Filter a plugin whose answer depends on a node only through its topology domain:
        ask once per domain (a tuple of label values) and copy the answer to the domain's
        nodes only when it changed. Zone spreading then costs 3 calls per pod, not 1000."""
        snapshot = state.snapshot
        nodes = snapshot.nodes
        keys = tuple(sorted(cast(ClusterScoped, plugin).topology_keys(state)))
        partition = snapshot.partition(keys)
        domains = ev.domains[i]
        if refilter_all or ev.domain_keys[i] != keys:
            domains.clear()
            ev.domain_keys[i] = keys
            targets: Iterable[tuple[str | None, ...]] = list(partition)
        elif len(keys) == 1:
            key = keys[0]
            targets = {(info.labels.get(key),) for name in since if (info := nodes.get(name))}
        else:
            # A change reaches every domain sharing any one label value with a changed node
            # (same zone, another host), not only the changed node's own combination.
            wanted: list[set[str | None]] = [set() for _ in keys]
            for name in since:
                info = nodes.get(name)
                if info is not None:
                    for index, key in enumerate(keys):
                        wanted[index].add(info.labels.get(key))
            targets = [
                domain
                for domain in partition
                if any(value in wanted[index] for index, value in enumerate(domain))
            ]
        failures = ev.failures[i]
        for domain in targets:
            members = partition.get(domain)
            if not members:
                continue
            status = plugin.filter(state, pod, nodes[members[0]])
            if domain in domains and domains[domain] == status:
                continue
            domains[domain] = status
            for name in members:
                if failures.get(name) != status:
                    ev.record_failure(i, name, status)
                    flipped.add(name)

    def _memo_key(self, plugin: Plugin, state: CycleState) -> Hashable:
        if plugin.NAME not in self._cluster_scoped:
            return _NO_KEY
        return cast(ClusterScoped, plugin).memo_key(state)

    def _expand(
        self, changed: set[str], plugin: Plugin, state: CycleState, snapshot: Snapshot
    ) -> set[str]:
        if not changed or plugin.NAME not in self._cluster_scoped:
            return changed
        keys = cast(ClusterScoped, plugin).topology_keys(state)
        if not keys:
            return changed
        out = set(changed)
        nodes = snapshot.nodes
        for name in changed:
            info = nodes.get(name)
            if info is None:
                continue
            for key in keys:
                value = info.labels.get(key)
                if value is not None:
                    out |= snapshot.domain(key, value)
        return out

    @staticmethod
    def diagnose(ev: Evaluation, snapshot: Snapshot) -> dict[str, Status]:
        """Why each infeasible node was rejected: its first failing filter, in order."""
        statuses: dict[str, Status] = {}
        for name, info in snapshot.nodes.items():
            if info.node is None or name in ev.feasible:
                continue
            for i, plugin in enumerate(ev.filters):
                status = ev.failures[i].get(name)
                if status is not None:
                    statuses[name] = status.with_plugin(plugin.NAME)
                    break
        return statuses


def log_weight(size: int) -> float:
    """``topologyNormalizingWeight``: ln(domains + 2)."""
    return math.log(size + 2)


__all__ = [
    "DEFAULT_FILTERS",
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "DEFAULT_SCHEDULER_NAME",
    "DEFAULT_SCORES",
    "DO_NOT_SCHEDULE",
    "LABEL_HOSTNAME",
    "LABEL_ZONE",
    "MAX_NODE_SCORE",
    "SKIP",
    "TAINT_UNSCHEDULABLE",
    "AffinityTerm",
    "ClusterScoped",
    "Code",
    "CycleState",
    "Evaluation",
    "FilterPlugin",
    "Framework",
    "Leaderboard",
    "NodeAggregate",
    "NodeInfo",
    "NodeSelectorTerm",
    "NormalizeScorePlugin",
    "Plugin",
    "PodInfo",
    "PreFilterExtensions",
    "PreFilterPlugin",
    "PreScorePlugin",
    "PreferredTerm",
    "Profile",
    "RequiredNodeAffinity",
    "Result",
    "ScorePlugin",
    "Snapshot",
    "Status",
    "Taint",
    "Toleration",
    "default_normalize",
    "default_profile",
    "first_untolerated",
    "fit_error_message",
    "log_weight",
    "more_important",
    "pod_requests",
    "tolerated",
    "unresolvable",
    "unschedulable",
]
