"""PodDisruptionBudgets: the disruption controller, and the eviction rule that reads it.

Controller (``Controller(name="disruption", kind="PodDisruptionBudget")``, upstream's
``pkg/controller/disruption``): for each budget, with the pods its selector picks in its
namespace,

* ``expectedPods``: the number of pods there should be: the pods themselves for an integer
  ``minAvailable``, else the sum of ``spec.replicas`` of their controllers (ReplicaSet or
  the Deployment above it, StatefulSet, ReplicationController; pods without a controller
  are not counted);
* ``desiredHealthy``: ``minAvailable`` (a percentage of ``expectedPods``, rounded up), or
  ``expectedPods - maxUnavailable`` (rounded up), at least 0;
* ``currentHealthy``: selected pods that are Ready and not being deleted, minus pods the
  eviction rule just recorded in ``disruptedPods`` (forgotten after 2 minutes, or once the
  pod is gone);
* ``disruptionsAllowed = max(currentHealthy - desiredHealthy, 0)``, the
  ``DisruptionAllowed`` condition, and ``observedGeneration``.

A pod change wakes the budgets selecting it. A controller that cannot be found leaves the
budget at ``disruptionsAllowed: 0`` with ``DisruptionAllowed=False`` (``SyncFailed``).

Eviction (``evict``, the ``pods/eviction`` subresource that ``kubectl drain`` uses,
upstream's ``registry/core/pod/storage/eviction.go``): a pod that is not running yet, is
finished or is already being deleted is simply deleted. Otherwise the one budget selecting
it (two are an error) must allow a disruption: it is decremented (and the pod recorded in
``disruptedPods``) by compare-and-swap before the pod is deleted with the request's
``deleteOptions``; else 429 TooManyRequests "Cannot evict pod as it would violate the pod's
disruption budget." with a ``DisruptionBudget`` cause. An unready pod may go without
spending the budget while the application is healthy enough (``IfHealthyBudget``) or
always (``AlwaysAllow``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from clusterapi import store
from clusterapi.controllers.base import Controller, Key, Obj
from clusterapi.core.selectors import LabelSelector, SelectorError, from_label_selector
from clusterapi.resources import registered as _kind
from clusterapi.resources.registry import Kind
from clusterapi.store import errors
from clusterapi.store.errors import ApiError, Cause

COMPONENT = "controllermanager"
# Eviction records a pod in disruptedPods; the controller forgets it after this long.
DELETION_TIMEOUT = timedelta(minutes=2)
MAX_DISRUPTED_PODS = 2000
TOO_MANY_REQUESTS = "Cannot evict pod as it would violate the pod's disruption budget."
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"


def _time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- which pods a budget covers ----------------------------------------------------------------


def selector_of(pdb: Obj) -> LabelSelector:
    """policy/v1: a null selector selects no pod, ``{}`` every pod of the namespace."""
    try:
        return from_label_selector((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return LabelSelector.nothing()


def budgets_for(pod: Obj) -> list[Obj]:
    """The budgets in the pod's namespace whose selector picks the pod."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    namespace = str(meta.get("namespace") or "")
    pdb_kind = _kind("policy/v1", "PodDisruptionBudget")
    return [
        pdb
        for pdb in store.list_objects(pdb_kind, namespace).objects()
        if selector_of(pdb).matches(labels)
    ]


def _budget_keys(pod: Obj) -> Iterable[Key]:
    for pdb in budgets_for(pod):
        meta = pdb["metadata"]
        yield (str(meta.get("namespace") or ""), str(meta["name"]))


def is_ready(pod: Obj) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def is_healthy(pod: Obj) -> bool:
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and is_ready(pod)


# --- status ------------------------------------------------------------------------------------


class NoController(Exception):
    """A selected pod names a controller that cannot be found."""


def scaled(value: Any, total: int) -> int:
    """``GetScaledValueFromIntOrPercent`` rounding up."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.endswith("%"):
        percent = int(text[:-1])
        return -(-total * percent // 100)
    return int(text)


def _replicas_of_controller(namespace: str, ref: Obj) -> tuple[str, int] | None:
    """(uid, replicas) of the workload that owns pods through ``ref``; None if unknown."""
    kinds = {
        "ReplicaSet": "apps/v1",
        "StatefulSet": "apps/v1",
        "ReplicationController": "v1",
        "Deployment": "apps/v1",
    }
    api_version = kinds.get(str(ref.get("kind")))
    if api_version is None:
        return None
    try:
        owner = store.get(_kind(api_version, str(ref["kind"])), namespace, str(ref.get("name")))
    except ApiError:
        return None
    meta = owner["metadata"]
    if ref.get("uid") and meta.get("uid") != ref.get("uid"):
        return None
    if ref.get("kind") == "ReplicaSet":
        # A Deployment's ReplicaSets come and go: the Deployment's scale is what counts.
        for parent in meta.get("ownerReferences") or ():
            if parent.get("controller") and parent.get("kind") == "Deployment":
                found = _replicas_of_controller(namespace, parent)
                if found is not None:
                    return found
    replicas = (owner.get("spec") or {}).get("replicas")
    return str(meta.get("uid")), int(1 if replicas is None else replicas)


def expected_scale(namespace: str, pods: list[Obj]) -> int:
    """The sum of the scales of the selected pods' controllers (each counted once)."""
    scales: dict[str, int] = {}
    for pod in pods:
        refs = [r for r in (pod["metadata"].get("ownerReferences") or ()) if r.get("controller")]
        if not refs:
            continue  # an unmanaged pod: upstream leaves it out as well
        found = _replicas_of_controller(namespace, refs[0])
        if found is None:
            raise NoController(f'found no controllers for pod "{pod["metadata"]["name"]}"')
        scales[found[0]] = found[1]
    return sum(scales.values())


def expected_and_desired(pdb: Obj, pods: list[Obj]) -> tuple[int, int]:
    spec = pdb.get("spec") or {}
    namespace = str(pdb["metadata"].get("namespace") or "")
    if spec.get("maxUnavailable") is not None:
        expected = expected_scale(namespace, pods)
        return expected, max(expected - scaled(spec["maxUnavailable"], expected), 0)
    minimum = spec.get("minAvailable")
    if minimum is None:
        return 0, 0
    if isinstance(minimum, int) and not isinstance(minimum, bool):
        return len(pods), minimum
    expected = expected_scale(namespace, pods)
    return expected, scaled(minimum, expected)


def compute_status(pdb: Obj, pods: list[Obj], now: datetime) -> tuple[Obj, float | None]:
    """The budget's new status, and when to look again (a recorded disruption expiring)."""
    status = dict(pdb.get("status") or {})
    generation = int(pdb["metadata"].get("generation") or 1)
    by_name = {p["metadata"]["name"]: p for p in pods}
    disrupted: dict[str, str] = {}
    recheck: float | None = None
    for name, when in (status.get("disruptedPods") or {}).items():
        pod = by_name.get(name)
        moment = _time(when)
        if pod is None or pod["metadata"].get("deletionTimestamp") or moment is None:
            continue
        expires = moment + DELETION_TIMEOUT
        if expires <= now:
            continue  # the eviction did not happen after all
        disrupted[name] = when
        wait = (expires - now).total_seconds()
        recheck = wait if recheck is None else min(recheck, wait)
    try:
        expected, desired = expected_and_desired(pdb, pods)
    except NoController as exc:
        status["disruptionsAllowed"] = 0
        _condition(status, "False", "SyncFailed", str(exc), now)
        return status, 30.0
    healthy = sum(1 for p in pods if is_healthy(p) and p["metadata"]["name"] not in disrupted)
    allowed = max(healthy - desired, 0)
    status.update(
        {
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
        }
    )
    if disrupted:
        status["disruptedPods"] = disrupted
    else:
        status.pop("disruptedPods", None)
    if allowed > 0:
        _condition(status, "True", "SufficientPods", "", now)
    else:
        _condition(status, "False", "InsufficientPods", "", now)
    return status, recheck


def _condition(status: Obj, value: str, reason: str, message: str, now: datetime) -> None:
    conditions = [c for c in status.get("conditions") or () if c.get("type") != "DisruptionAllowed"]
    previous = next(
        (c for c in status.get("conditions") or () if c.get("type") == "DisruptionAllowed"), None
    )
    since = (
        previous["lastTransitionTime"]
        if previous is not None and previous.get("status") == value
        else _stamp(now)
    )
    conditions.append(
        {
            "type": "DisruptionAllowed",
            "status": value,
            "observedGeneration": status.get("observedGeneration", 0),
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }
    )
    status["conditions"] = conditions


def reconcile(namespace: str, name: str) -> float | None:
    """Recompute one budget's status; ask again when a recorded disruption expires."""
    pdb_kind = _kind("policy/v1", "PodDisruptionBudget")
    try:
        pdb = store.get(pdb_kind, namespace, name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    selector = selector_of(pdb)
    pods = store.list_objects(
        _kind("v1", "Pod"), namespace, match=lambda p: selector.matches(p["metadata"].get("labels"))
    ).objects()
    status, recheck = compute_status(pdb, pods, datetime.now(UTC))

    def write(obj: Obj) -> Obj:
        obj["status"] = status
        return obj

    try:
        store.guaranteed_update(
            pdb_kind, namespace, name, write, subresource="status", field_manager=COMPONENT
        )
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        if exc.reason == "Conflict":
            return 0.1
        raise
    return recheck


CONTROLLER = Controller(
    name="disruption",
    kind="PodDisruptionBudget",
    reconcile=reconcile,
    watches={"Pod": _budget_keys},
)


# --- eviction ------------------------------------------------------------------------------


def _too_many_requests(message: str, cause: str, retry_after: int = 0) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        message,
        causes=[Cause(DISRUPTION_BUDGET_CAUSE, cause)],
        retry_after=retry_after,
    )


def _can_ignore_budget(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(
        pod["metadata"].get("deletionTimestamp")
    )


def _delete_options(options: Obj, dry_run: bool) -> dict[str, Any]:
    preconditions = options.get("preconditions") or {}
    grace = options.get("gracePeriodSeconds")
    propagation = options.get("propagationPolicy")
    if propagation is None and options.get("orphanDependents") is not None:
        propagation = "Orphan" if options["orphanDependents"] else "Background"
    return {
        "grace_period": int(grace) if grace is not None else None,
        "propagation": propagation,
        "precondition_uid": preconditions.get("uid"),
        "precondition_rv": preconditions.get("resourceVersion"),
        "dry_run": dry_run or bool(options.get("dryRun")),
    }


def _decrement(pdb: Obj, pod_name: str, dry_run: bool) -> None:
    """``checkAndDecrement``: spend one disruption of the budget, compare-and-swap."""
    pdb_kind = _kind("policy/v1", "PodDisruptionBudget")
    meta = pdb["metadata"]

    def spend(current: Obj) -> Obj:
        status = current.setdefault("status", {})
        name = current["metadata"]["name"]
        generation = int(current["metadata"].get("generation") or 1)
        if int(status.get("observedGeneration") or 0) < generation:
            raise _too_many_requests(
                TOO_MANY_REQUESTS,
                f"The disruption budget {name} is still being processed by the server.",
                retry_after=10,
            )
        allowed = int(status.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise errors.forbidden(
                f'poddisruptionbudgets.policy "{name}" is forbidden: pdb disruptions allowed '
                "is negative"
            )
        disrupted = dict(status.get("disruptedPods") or {})
        if len(disrupted) > MAX_DISRUPTED_PODS:
            raise errors.forbidden(
                f'poddisruptionbudgets.policy "{name}" is forbidden: DisruptedPods map too '
                "big - too many evictions not confirmed by PDB controller"
            )
        if allowed == 0:
            raise _too_many_requests(
                TOO_MANY_REQUESTS,
                f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently",
            )
        status["disruptionsAllowed"] = allowed - 1
        if allowed - 1 == 0:
            _condition(status, "False", "InsufficientPods", "", datetime.now(UTC))
        # The controller must not count the pod as healthy while it is being deleted.
        disrupted[pod_name] = _stamp(datetime.now(UTC))
        status["disruptedPods"] = disrupted
        return current

    store.guaranteed_update(
        pdb_kind,
        str(meta.get("namespace") or ""),
        str(meta["name"]),
        spend,
        subresource="status",
        dry_run=dry_run,
        field_manager="kube-apiserver",
    )


def _mark_and_delete(pod_kind: Kind, pod: Obj, options: dict[str, Any], user: Any) -> None:
    """``addConditionAndDeletePod``: the ``DisruptionTarget`` condition, then the delete.

    Preconditions are checked on the condition's write; the delete then carries the version
    that write produced, so nothing can change the pod in between unnoticed.
    """
    meta = pod["metadata"]
    namespace, name = str(meta.get("namespace") or ""), str(meta["name"])
    if not options["dry_run"]:

        def mark(obj: Obj) -> Obj:
            current = obj["metadata"]
            uid, rv = options["precondition_uid"], options["precondition_rv"]
            if uid and uid != current.get("uid"):
                raise errors.conflict(
                    pod_kind,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{current.get('uid')}",
                )
            if rv and rv != current.get("resourceVersion"):
                raise errors.conflict(
                    pod_kind,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {rv}, "
                    f"ResourceVersion in object meta: {current.get('resourceVersion')}",
                )
            status = obj.setdefault("status", {})
            if current.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
                raise _Unchanged
            conditions = [
                c for c in status.get("conditions") or () if c.get("type") != "DisruptionTarget"
            ]
            conditions.append(
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": _stamp(datetime.now(UTC)),
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                }
            )
            status["conditions"] = conditions
            return obj

        try:
            written = store.guaranteed_update(
                pod_kind,
                namespace,
                name,
                mark,
                subresource="status",
                field_manager="kube-apiserver",
            )
            if options["precondition_rv"]:
                options = {**options, "precondition_rv": written.obj["metadata"]["resourceVersion"]}
        except _Unchanged:
            pass
    store.delete(pod_kind, namespace, name, user=user, **options)


class _Unchanged(Exception):
    """The pod needs no DisruptionTarget condition (finished, or already being deleted)."""


def evict(
    namespace: str, name: str, eviction: Obj, *, user: Any = None, dry_run: bool = False
) -> Obj:
    """Evict a pod, honouring its PodDisruptionBudget (see the module docstring).

    Returns the Status the API answers (201); raises ``ApiError`` (404, 429, 500, ...).
    """
    pod_kind = _kind("v1", "Pod")
    body_name = (eviction.get("metadata") or {}).get("name")
    if body_name and body_name != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = _delete_options(eviction.get("deleteOptions") or {}, dry_run)
    pod = store.get(pod_kind, namespace, name)
    if options["precondition_uid"] and options["precondition_uid"] != pod["metadata"]["uid"]:
        raise errors.conflict(
            pod_kind,
            name,
            f"Precondition failed: UID in precondition: {options['precondition_uid']}, UID in "
            f"object meta: {pod['metadata']['uid']}",
        )
    if not _can_ignore_budget(pod):
        budgets = budgets_for(pod)
        if len(budgets) > 1:
            raise ApiError(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction "
                "subresource does not support.",
            )
        if budgets:
            budget = budgets[0]
            spec = budget.get("spec") or {}
            status = budget.get("status") or {}
            unhealthy_may_go = not is_ready(pod) and (
                spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                or (
                    int(status.get("desiredHealthy") or 0) > 0
                    and int(status.get("currentHealthy") or 0)
                    >= int(status.get("desiredHealthy") or 0)
                )
            )
            if unhealthy_may_go:
                # The pod must still be unready when deleted: delete it at this version.
                options["precondition_rv"] = options["precondition_rv"] or pod["metadata"].get(
                    "resourceVersion"
                )
            else:
                _decrement(budget, name, options["dry_run"])
    _mark_and_delete(pod_kind, pod, options, user)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
