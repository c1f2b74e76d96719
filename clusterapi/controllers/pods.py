"""Pod and ownership helpers shared by the workload controllers.

Role
----
The ReplicaSet, ReplicationController and Deployment controllers (and later the Job,
StatefulSet and DaemonSet controllers) all need the same small rules, which upstream keeps
in ``pkg/controller/controller_utils.go``, ``controller_ref_manager.go`` and
``pkg/api/v1/pod``. They live here once:

* **time**: ``utcnow`` is the one clock of the workload loops (tests move it forward), and
  timestamps are written and read as ``metav1.Time`` strings;
* **pod state**: active (counted as a replica), terminating, ready, available after
  ``minReadySeconds``, and when a ready pod will become available;
* **creating pods** from a template: labels, annotations and finalizers from the template,
  ``generateName=<owner>-`` and the controller ownerReference, through ``store.create``;
* **ranking pods for deletion** in upstream's ``ActivePodsWithRanks`` order, so a scale-down
  removes unscheduled, pending, not-ready, doubled-up and young pods first;
* **claiming** dependents (``ControllerRefManager``): adopt orphans that match the owner's
  selector, release owned objects that no longer match, ignore those another owner controls.

One reconcile per key at a time is not a rule of these helpers but of the task layer
(``tasks.key_lock``): every controller's reconcile runs under its key's lock.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from clusterapi import store
from clusterapi.core.selectors import LabelSelector
from clusterapi.resources import by_kind
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
# Pending pods go first, then Unknown, then Running (other phases count as Pending).
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
# Upstream's names.SimpleNameGenerator keeps generated names within 63 characters.
_MAX_GENERATE_NAME = 58
_GENERATE_NAME_RETRIES = 8


def pod_kind() -> Kind:
    """The core/v1 Pod kind."""
    kind = by_kind("v1", "Pod")
    assert kind is not None
    return kind


# --- time -------------------------------------------------------------------------------------


def utcnow() -> datetime:
    """The current time of the workload controllers (monkeypatched by tests)."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """A ``metav1.Time`` as serialised: RFC 3339, UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    """A ``metav1.Time`` string as an aware datetime; None when absent or malformed."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- pod state --------------------------------------------------------------------------------


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_active(pod: Obj) -> bool:
    """Counted as a replica: not finished and not being deleted (``IsPodActive``)."""
    return phase(pod) not in TERMINAL_PHASES and not pod["metadata"].get("deletionTimestamp")


def is_terminating(pod: Obj) -> bool:
    """Being deleted but still running (``status.terminatingReplicas`` counts these)."""
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in TERMINAL_PHASES


def _ready_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition
    return None


def is_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True (``podutil.IsPodReady``)."""
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    """When a ready pod last became ready (its Ready condition's lastTransitionTime)."""
    condition = _ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    return parse_time(condition.get("lastTransitionTime"))


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for longer than ``minReadySeconds`` (``podutil.IsPodAvailable``)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def available_in(pods: Iterable[Obj], min_ready_seconds: int, now: datetime) -> float | None:
    """Seconds until the first ready-but-not-yet-available pod becomes available, if any.

    Upstream resyncs a ReplicaSet after ``minReadySeconds``; waking exactly when the next pod
    crosses the line keeps ``availableReplicas`` (and with it rollouts) prompt.
    """
    if min_ready_seconds <= 0:
        return None
    soonest: float | None = None
    for pod in pods:
        since = ready_since(pod)
        if since is None or is_available(pod, min_ready_seconds, now):
            continue
        # "Before" is strict upstream: available one instant after the deadline.
        wait = (since + timedelta(seconds=min_ready_seconds) - now).total_seconds() + 1.0
        soonest = wait if soonest is None else min(soonest, wait)
    return None if soonest is None else max(soonest, 0.1)


# --- owner references -------------------------------------------------------------------------


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true`` (``metav1.GetControllerOf``)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owner_reference(owner: Obj) -> Obj:
    """The controller ownerReference a controller puts on what it creates or adopts."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


# --- creating pods ----------------------------------------------------------------------------


def generate_name_prefix(owner_name: str) -> str:
    """``<owner>-``, truncated as upstream's name generator would truncate it."""
    return f"{owner_name}-"[:_MAX_GENERATE_NAME]


def pod_from_template(template: Obj, owner: Obj) -> Obj:
    """The pod a controller creates from ``template`` (``GetPodFromTemplate``)."""
    template_meta = template.get("metadata") or {}
    metadata: Obj = {"generateName": generate_name_prefix(owner["metadata"]["name"])}
    for field in ("labels", "annotations"):
        value = template_meta.get(field)
        if value:
            metadata[field] = dict(value)
    if template_meta.get("finalizers"):
        metadata["finalizers"] = list(template_meta["finalizers"])
    metadata["ownerReferences"] = [owner_reference(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def create_pod(template: Obj, owner: Obj, *, field_manager: str) -> Obj:
    """Create one pod for ``owner`` in its namespace; returns the pod as stored.

    A generated name that collides with an existing pod is retried with a fresh suffix, as
    the API server does for ``generateName`` (the caller sees only real failures).
    """
    namespace = owner["metadata"]["namespace"]
    for attempt in range(_GENERATE_NAME_RETRIES):
        try:
            return store.create(
                pod_kind(),
                pod_from_template(template, owner),
                namespace=namespace,
                field_manager=field_manager,
            ).obj
        except ApiError as exc:
            if exc.reason != "AlreadyExists" or attempt == _GENERATE_NAME_RETRIES - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def namespace_terminating(exc: ApiError) -> bool:
    """The create failed because its namespace is being deleted (``NamespaceTerminating``)."""
    return any(cause.reason == "NamespaceTerminating" for cause in exc.causes)


# --- ranking pods for deletion ----------------------------------------------------------------


def _deletion_cost(pod: Obj) -> int:
    raw = ((pod["metadata"].get("annotations")) or {}).get(DELETION_COST_ANNOTATION)
    try:
        cost = int(str(raw))
    except (TypeError, ValueError):
        return 0
    return cost if -(2**31) <= cost < 2**31 else 0


def _max_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return max(
        (int(s.get("restartCount") or 0) for s in statuses if isinstance(s, dict)), default=0
    )


def _log_rank(moment: datetime, now: datetime) -> int:
    # Upstream takes log2 of the age in nanoseconds: pods of similar age (within a factor of
    # two) rank alike, so a scale-down does not always pick the very newest pod.
    age_ns = (now - moment) / timedelta(microseconds=1) * 1000
    return int(math.log2(age_ns)) if age_ns > 0 else -1


def _newer_first(
    first: datetime | None, second: datetime | None, uids: tuple[str, str], now: datetime | None
) -> bool | None:
    """Upstream's ``afterOrZero`` with logarithmic buckets; None when they rank alike."""
    if first == second:
        return None
    if first is None or second is None:
        # A zero (unknown) time sorts first.
        return first is None
    if now is None:
        return first > second
    diff = _log_rank(first, now) - _log_rank(second, now)
    if diff == 0:
        return uids[0] < uids[1]
    return diff < 0


def _deletion_less(a: tuple[Obj, int], b: tuple[Obj, int], now: datetime | None) -> bool:
    """Whether pod ``a`` should be deleted before pod ``b`` (``ActivePodsWithRanks.Less``)."""
    pa, rank_a = a
    pb, rank_b = b
    node_a = str((pa.get("spec") or {}).get("nodeName") or "")
    node_b = str((pb.get("spec") or {}).get("nodeName") or "")
    # 1. Unassigned < assigned.
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    # 2. Pending < Unknown < Running.
    ord_a, ord_b = _PHASE_ORDINAL.get(phase(pa), 0), _PHASE_ORDINAL.get(phase(pb), 0)
    if ord_a != ord_b:
        return ord_a < ord_b
    # 3. Not ready < ready.
    ready_a, ready_b = is_ready(pa), is_ready(pb)
    if ready_a != ready_b:
        return not ready_a
    # 4. Lower pod-deletion-cost < higher.
    cost_a, cost_b = _deletion_cost(pa), _deletion_cost(pb)
    if cost_a != cost_b:
        return cost_a < cost_b
    # 5. Doubled up (more related pods on the same node) < not doubled up.
    if rank_a != rank_b:
        return rank_a > rank_b
    uids = (str(pa["metadata"].get("uid", "")), str(pb["metadata"].get("uid", "")))
    # 6. Ready for less time < ready for longer.
    if ready_a and ready_b:
        verdict = _newer_first(ready_since(pa), ready_since(pb), uids, now)
        if verdict is not None:
            return verdict
    # 7. More container restarts < fewer.
    restarts_a, restarts_b = _max_restarts(pa), _max_restarts(pb)
    if restarts_a != restarts_b:
        return restarts_a > restarts_b
    # 8. Newer < older.
    verdict = _newer_first(
        parse_time(pa["metadata"].get("creationTimestamp")),
        parse_time(pb["metadata"].get("creationTimestamp")),
        uids,
        now,
    )
    return bool(verdict)


def rank_for_deletion(
    pods: Sequence[Obj], related: Iterable[Obj] = (), now: datetime | None = None
) -> list[Obj]:
    """``pods`` in the order a scale-down deletes them (first = deleted first).

    ``related`` are the active pods of every ReplicaSet sharing the owner's controller (the
    Deployment): a pod on a node crowded with its siblings is deleted before a lone one.
    """
    per_node: dict[str, int] = {}
    for pod in related:
        if is_active(pod):
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            per_node[node] = per_node.get(node, 0) + 1
    ranked = [
        (pod, per_node.get(str((pod.get("spec") or {}).get("nodeName") or ""), 0)) for pod in pods
    ]

    def compare(a: tuple[Obj, int], b: tuple[Obj, int]) -> int:
        if _deletion_less(a, b, now):
            return -1
        if _deletion_less(b, a, now):
            return 1
        return 0

    return [pod for pod, _rank in sorted(ranked, key=functools.cmp_to_key(compare))]


# --- claiming dependents ----------------------------------------------------------------------


class _Skip(Exception):
    """The dependent changed under us (another owner, deleted, recreated): leave it."""


def claim(
    owner: Obj,
    candidates: Iterable[Obj],
    dependent_kind: Kind,
    selector: LabelSelector,
    *,
    field_manager: str,
    match: Callable[[Obj], bool] | None = None,
) -> list[Obj]:
    """The candidates ``owner`` controls after adopting and releasing (``ClaimObjects``).

    * owned and matching: kept;
    * owned but no longer matching: released (our ownerReference removed), unless the owner
      is being deleted;
    * orphans that match, are not being deleted and live in the owner's namespace: adopted
      (controller ownerReference added), after re-reading the owner to be sure it still exists
      with the same uid and is not being deleted (upstream's ``RecheckDeletionTimestamp``);
    * controlled by someone else: ignored.

    Adoption and release are compare-and-swap writes that re-check the dependent, so two
    controllers racing for an orphan cannot both win. ``match`` replaces the label test
    (Deployments also require the ReplicaSet's own selector to be compatible).
    """
    meta = owner["metadata"]
    owner_uid = meta["uid"]
    owner_deleting = bool(meta.get("deletionTimestamp"))
    matches = match or (lambda obj: selector.matches(obj["metadata"].get("labels")))
    can_adopt: bool | None = None
    claimed: list[Obj] = []
    for obj in candidates:
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue
            if matches(obj):
                claimed.append(obj)
            elif not owner_deleting:
                _release(obj, dependent_kind, owner_uid, field_manager)
            continue
        if owner_deleting or not matches(obj) or obj["metadata"].get("deletionTimestamp"):
            continue
        if obj["metadata"].get("namespace") != meta.get("namespace"):
            continue
        if can_adopt is None:
            can_adopt = _still_there(owner)
        if not can_adopt:
            continue
        adopted = _adopt(obj, dependent_kind, owner, field_manager)
        if adopted is not None:
            claimed.append(adopted)
    return claimed


def _still_there(owner: Obj) -> bool:
    kind = by_kind(owner["apiVersion"], owner["kind"])
    assert kind is not None
    meta = owner["metadata"]
    try:
        fresh = store.get(kind, meta.get("namespace", ""), meta["name"])
    except ApiError as exc:
        if exc.reason == "NotFound":
            return False
        raise
    fresh_meta = fresh["metadata"]
    return fresh_meta["uid"] == meta["uid"] and not fresh_meta.get("deletionTimestamp")


def _update_dependent(
    obj: Obj, kind: Kind, change: Callable[[Obj], None], field_manager: str
) -> Obj | None:
    meta = obj["metadata"]
    uid = meta["uid"]

    def mutate(current: Obj) -> Obj:
        if current["metadata"]["uid"] != uid:
            raise _Skip
        change(current)
        return current

    try:
        return store.guaranteed_update(
            kind, meta.get("namespace", ""), meta["name"], mutate, field_manager=field_manager
        ).obj
    except _Skip:
        return None
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise


def _adopt(obj: Obj, kind: Kind, owner: Obj, field_manager: str) -> Obj | None:
    reference = owner_reference(owner)

    def add_reference(current: Obj) -> None:
        meta = current["metadata"]
        if controller_ref(current) is not None or meta.get("deletionTimestamp"):
            raise _Skip
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != reference["uid"]]
        meta["ownerReferences"] = [*refs, reference]

    return _update_dependent(obj, kind, add_reference, field_manager)


def _release(obj: Obj, kind: Kind, owner_uid: str, field_manager: str) -> None:
    def drop_reference(current: Obj) -> None:
        meta = current["metadata"]
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != owner_uid]
        if refs:
            meta["ownerReferences"] = refs
        else:
            meta.pop("ownerReferences", None)

    _update_dependent(obj, kind, drop_reference, field_manager)
