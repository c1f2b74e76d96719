"""DefaultPreemption: make room for a pod by evicting lower-priority pods (PostFilter).

Runs when no node fits a pod (upstream ``pkg/scheduler/framework/preemption``):

1. Is the pod allowed to preempt? Not with ``preemptionPolicy: Never``, nor while a
   lower-priority pod it already preempted is still terminating on its nominated node.
2. Candidate nodes are those where filtering failed for a reason preemption can fix
   (``Unschedulable``); the others are "Preemption is not helpful for scheduling".
3. On each candidate, remove every pod of lower priority, check that the pod then fits
   (filters run with the PreFilter state adjusted through ``remove_pod``), then give back
   as many of them as still lets it fit, most important first: first those whose eviction
   would violate a PodDisruptionBudget, then the rest. What is left are the victims.
4. Pick the node with the fewest PDB violations, then the lowest highest-victim priority,
   the lowest sum of priorities, the fewest victims, the latest start among the most
   important victims, as upstream's ``pickOneNodeForPreemption``.

The scheduler then marks the victims (``DisruptionTarget``), deletes them gracefully and
nominates the node for the pod (``status.nominatedNodeName``); the pod is scheduled there
once the victims are gone, and lower-priority pods cannot take the room meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from clusterapi.core.selectors import SelectorError, from_label_selector
from clusterapi.scheduler.framework import (
    Code,
    CycleState,
    FilterPlugin,
    Framework,
    NodeInfo,
    PodInfo,
    PreFilterExtensions,
    Result,
    Snapshot,
    Status,
    fit_error_message,
    unresolvable,
)

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_ELIGIBLE_POLICY = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
PREEMPTION_REASON = "PreemptionByScheduler"

Obj = dict[str, Any]


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo]
    pdb_violations: int


@dataclass
class Outcome:
    """Where the pod may go after the victims leave; else why preemption cannot help."""

    node: str | None = None
    victims: list[PodInfo] = field(default_factory=list)
    message: str = ""  # the PostFilter message ("preemption: ..."), empty on success


def terminating_by_preemption(pod: PodInfo) -> bool:
    if not pod.terminating:
        return False
    for condition in (pod.obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "DisruptionTarget" and (
            condition.get("reason") == PREEMPTION_REASON
        ):
            return True
    return False


def eligible(pod: PodInfo, snapshot: Snapshot, nominated_status: Status | None) -> str:
    """``PodEligibleToPreemptOthers``: "" when eligible, else why not."""
    if pod.preemption_policy == "Never":
        return NOT_ELIGIBLE_POLICY
    nominated = pod.nominated_node_name
    if nominated:
        if nominated_status is not None and nominated_status.code == (
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        ):
            return ""
        info = snapshot.nodes.get(nominated)
        if info is not None:
            for other in info.pods.values():
                if other.priority < pod.priority and terminating_by_preemption(other):
                    return NOT_ELIGIBLE_TERMINATING
    return ""


class Budgets:
    """PodDisruptionBudgets as preemption counts them (budgets left per PDB)."""

    def __init__(self, pdbs: Sequence[Obj]) -> None:
        self.pdbs = []
        for pdb in pdbs:
            try:
                selector = from_label_selector((pdb.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            # Preemption ignores budgets whose selector selects everything (as upstream).
            if selector.empty or selector.matches_nothing:
                continue
            status = pdb.get("status") or {}
            self.pdbs.append(
                (
                    str(pdb["metadata"].get("namespace") or ""),
                    selector,
                    int(status.get("disruptionsAllowed") or 0),
                    set((status.get("disruptedPods") or {}).keys()),
                )
            )

    def split(self, pods: Sequence[PodInfo]) -> tuple[list[PodInfo], list[PodInfo]]:
        """``filterPodsWithPDBViolation``: (pods whose eviction violates a PDB, the rest)."""
        allowed = [p[2] for p in self.pdbs]
        violating: list[PodInfo] = []
        others: list[PodInfo] = []
        for pod in pods:
            violated = False
            for i, (namespace, selector, _allowed, disrupted) in enumerate(self.pdbs):
                if namespace != pod.namespace or not selector.matches(pod.labels):
                    continue
                if pod.name in disrupted:
                    continue  # already counted as disrupted by the budget
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
            (violating if violated else others).append(pod)
        return violating, others


def select_victims(
    framework: Framework,
    state: CycleState,
    filters: Sequence[FilterPlugin],
    pod: PodInfo,
    node: NodeInfo,
    budgets: Budgets,
) -> tuple[list[PodInfo], int, Status | None]:
    """``SelectVictimsOnNode``: (victims, PDB violations, None) or why the node cannot do."""
    info = node.clone()
    local = state.clone()
    extensions = [cast(PreFilterExtensions, p) for p in filters if p.NAME in framework.extensions]
    lower = [p for p in info.pods.values() if p.priority < pod.priority]
    if not lower:
        return [], 0, unresolvable(NO_VICTIMS)

    def remove(victim: PodInfo) -> None:
        info.remove_pod(victim)
        for plugin in extensions:
            plugin.remove_pod(local, pod, victim, info)

    def add(victim: PodInfo) -> None:
        info.add_pod(victim)
        for plugin in extensions:
            plugin.add_pod(local, pod, victim, info)

    for victim in lower:
        remove(victim)
    status = framework.filters_with_nominated(filters, local, pod, info)
    if status is not None:
        return [], 0, status
    lower.sort(key=_importance_key)
    violating, others = budgets.split(lower)
    victims: list[PodInfo] = []
    violations = 0
    for group, counts in ((violating, True), (others, False)):
        for victim in group:
            add(victim)
            if framework.filters_with_nominated(filters, local, pod, info) is not None:
                remove(victim)
                victims.append(victim)
                violations += 1 if counts else 0
    return victims, violations, None


def _importance_key(pod: PodInfo) -> tuple[int, str]:
    # Most important first: higher priority, then the earlier start.
    return (-pod.priority, pod.start_time or "~")


def pick_one(candidates: Sequence[Candidate]) -> Candidate:
    """``pickOneNodeForPreemption`` (see the module docstring)."""
    for candidate in candidates:
        if not candidate.victims:
            return candidate
    pool = list(candidates)

    def keep_min(score: Any) -> None:
        nonlocal pool
        best = min(score(c) for c in pool)
        pool = [c for c in pool if score(c) == best]

    keep_min(lambda c: c.pdb_violations)
    keep_min(lambda c: max(v.priority for v in c.victims))
    keep_min(lambda c: sum(v.priority + 2**31 for v in c.victims))
    keep_min(lambda c: len(c.victims))

    def earliest_top_start(c: Candidate) -> str:
        top = max(v.priority for v in c.victims)
        starts = [v.start_time or "~" for v in c.victims if v.priority == top]
        return min(starts)

    # The latest "earliest start of the most important victims" wins.
    latest = max(earliest_top_start(c) for c in pool)
    pool = [c for c in pool if earliest_top_start(c) == latest]
    return pool[0]


def preempt(
    framework: Framework, pod: PodInfo, result: Result, snapshot: Snapshot, pdbs: Sequence[Obj]
) -> Outcome:
    """Find where preempting lower-priority pods lets ``pod`` run (module docstring)."""
    nominated_status = result.statuses.get(pod.nominated_node_name)
    why_not = eligible(pod, snapshot, nominated_status)
    if why_not:
        return Outcome(message="preemption: " + why_not)
    state = CycleState(snapshot)
    filters, rejected = framework.pre_filter(state, pod)
    statuses: dict[str, Status] = {}
    potential: list[NodeInfo] = []
    for name, info in snapshot.nodes.items():
        if info.node is None:
            continue
        status = result.statuses.get(name)
        if rejected is not None or status is None or status.code != Code.UNSCHEDULABLE:
            statuses[name] = unresolvable(NOT_HELPFUL)
        else:
            potential.append(info)
    budgets = Budgets(pdbs)
    candidates: list[Candidate] = []
    for info in potential:
        victims, violations, status = select_victims(framework, state, filters, pod, info, budgets)
        if status is not None:
            statuses[info.name] = status
        else:
            candidates.append(Candidate(info.name, victims, violations))
    if not candidates:
        num_nodes = sum(1 for n in snapshot.nodes.values() if n.node is not None)
        return Outcome(message="preemption: " + fit_error_message(num_nodes, statuses))
    chosen = pick_one(candidates)
    return Outcome(node=chosen.node, victims=chosen.victims)


def lower_priority_nominated(snapshot: Snapshot, pod: PodInfo, node: str) -> list[PodInfo]:
    """Pods nominated to ``node`` with lower priority: their nomination is cleared."""
    return [
        p
        for p in snapshot.nominated.get(node, {}).values()
        if p.priority < pod.priority and p.uid != pod.uid
    ]


def victim_condition(victim: PodInfo, now: str) -> Obj:
    return {
        "type": "DisruptionTarget",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": now,
        "reason": PREEMPTION_REASON,
        "message": f"{victim.scheduler_name}: preempting to accommodate a higher priority pod",
    }
