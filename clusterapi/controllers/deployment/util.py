"""Shared rules of the Deployment controller: names, accessors, fenceposts and sizing.

Everything here is a pure function of the objects passed in (no store access, no writes), so
every other module of the package can use it: annotation keys and condition reasons, small
readers of ``spec`` and ``status``, the ``maxSurge``/``maxUnavailable`` arithmetic (rounding
surge up and unavailability down, as upstream does) and the rules that size ReplicaSets
during a rollout or a proportional resize (upstream ``deployment_util.go``).

``int_or_percent`` is also used by the DaemonSet and StatefulSet controllers (through the
package's re-export).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from clusterapi.controllers import pods
from clusterapi.controllers.base import Obj
from clusterapi.resources import registered as _kind
from clusterapi.resources.registry import Kind

COMPONENT = "deployment-controller"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Annotations a Deployment does not copy onto its ReplicaSets.
_SKIPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)
# Upstream caps the revision-history annotation at this many characters.
MAX_REVISION_HISTORY_CHARS = 2000
_MAX_INT32 = 2**31 - 1

# Condition reasons, as upstream names them (kubectl and dashboards match on them).
REASON_RS_UPDATED = "ReplicaSetUpdated"
REASON_RS_CREATE_ERROR = "ReplicaSetCreateError"
REASON_NEW_RS = "NewReplicaSetCreated"
REASON_FOUND_NEW_RS = "FoundNewReplicaSet"
REASON_NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
REASON_TIMED_OUT = "ProgressDeadlineExceeded"
REASON_PAUSED = "DeploymentPaused"
REASON_RESUMED = "DeploymentResumed"
REASON_MIN_AVAILABLE = "MinimumReplicasAvailable"
REASON_MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

# How soon a reconcile whose ReplicaSet could not be created tries again.
FAILURE_RETRY_SECONDS = 5.0


def deployment_kind() -> Kind:
    return _kind("apps/v1", "Deployment")


def replicaset_kind() -> Kind:
    return _kind("apps/v1", "ReplicaSet")


# --- small accessors --------------------------------------------------------------------------


def _spec(obj: Obj | None) -> Obj:
    return (obj or {}).get("spec") or {}


def _status(obj: Obj | None) -> Obj:
    return (obj or {}).get("status") or {}


def replicas(obj: Obj | None) -> int:
    """``spec.replicas`` (0 for a missing object)."""
    return int(_spec(obj).get("replicas", 0) or 0) if obj else 0


def _count(obj: Obj | None, field: str) -> int:
    return int(_status(obj).get(field) or 0)


def _annotations(obj: Obj) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {}
    annotations: dict[str, str] = meta["annotations"]
    return annotations


def _int_annotation(obj: Obj, key: str) -> int | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def revision(rs: Obj) -> int:
    """The ReplicaSet's revision (0 when it has none or it does not parse)."""
    return _int_annotation(rs, REVISION) or 0


def _created(obj: Obj) -> tuple[str, str]:
    # Whole-second timestamps tie often; upstream then orders by name.
    meta = obj["metadata"]
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def _active(rss: Iterable[Obj | None]) -> list[Obj]:
    """ReplicaSets that want pods (``FilterActiveReplicaSets``)."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def _controlled(rs: Obj, deployment: Obj) -> bool:
    return pods.is_controlled_by(rs, deployment)


# --- maxSurge and maxUnavailable --------------------------------------------------------------

_PERCENT = re.compile(r"^(\d+)%$")


def int_or_percent(value: object, total: int, *, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: an int, or a percentage of ``total``."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match:
            scaled = int(match.group(1)) * total
            return -(-scaled // 100) if round_up else scaled // 100
        if value.isdigit():
            return int(value)
    # Validation rejects anything else; upstream then ignores the error and uses 0.
    return 0


def resolve_fenceposts(surge: object, unavailable: object, desired: int) -> tuple[int, int]:
    """Absolute maxSurge (rounded up) and maxUnavailable (rounded down); never both 0."""
    max_surge = int_or_percent(0 if surge is None else surge, desired, round_up=True)
    max_unavailable = int_or_percent(
        0 if unavailable is None else unavailable, desired, round_up=False
    )
    if max_surge == 0 and max_unavailable == 0:
        # Rounding down can make both 0; surging may be blocked by quota, so allow one
        # unavailable pod rather than never progressing.
        max_unavailable = 1
    return max_surge, max_unavailable


def _rolling(deployment: Obj) -> Obj | None:
    strategy = _spec(deployment).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    rolling: Obj = strategy.get("rollingUpdate") or {}
    return rolling


def max_surge(deployment: Obj) -> int:
    """How many pods over ``spec.replicas`` a rolling update may run (0 for Recreate)."""
    rolling = _rolling(deployment)
    if rolling is None:
        return 0
    surge, _ = resolve_fenceposts(
        rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas(deployment)
    )
    return surge


def max_unavailable(deployment: Obj) -> int:
    """How many of ``spec.replicas`` may be unavailable (0 for Recreate or 0 replicas)."""
    rolling = _rolling(deployment)
    desired = replicas(deployment)
    if rolling is None or desired == 0:
        return 0
    _, unavailable = resolve_fenceposts(
        rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired
    )
    return min(unavailable, desired)


def _has_progress_deadline(deployment: Obj) -> bool:
    deadline = _spec(deployment).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != _MAX_INT32


def _revision_history_limit(deployment: Obj) -> int | None:
    limit = _spec(deployment).get("revisionHistoryLimit")
    if limit is None or int(limit) == _MAX_INT32:
        return None
    return int(limit)


# --- ReplicaSet sizing rules (deployment_util.go) ---------------------------------------------


def new_rs_new_replicas(deployment: Obj, all_rss: Iterable[Obj], new_rs: Obj) -> int:
    """How big the new ReplicaSet may grow now (``NewRSNewReplicas``)."""
    if _rolling(deployment) is None:
        return replicas(deployment)
    desired = replicas(deployment)
    # Upstream sums spec.replicas alone. A ReplicaSet that was just scaled down still has its
    # extra pods until its own reconcile deletes them (a separate task here), so the larger of
    # the wanted and the reported count keeps every list of live pods within maxSurge.
    current = sum(max(replicas(rs), _count(rs, "replicas")) for rs in all_rss)
    max_total = desired + max_surge(deployment)
    if current >= max_total:
        return replicas(new_rs)
    scale_up = min(max_total - current, desired - replicas(new_rs))
    return replicas(new_rs) + scale_up


def is_saturated(deployment: Obj, rs: Obj | None) -> bool:
    """The new ReplicaSet holds all desired replicas, all available (``IsSaturated``)."""
    if rs is None:
        return False
    desired = _int_annotation(rs, DESIRED_REPLICAS)
    if desired is None:
        return False
    want = replicas(deployment)
    return replicas(rs) == want and desired == want and _count(rs, "availableReplicas") == want


def _round_half_away(value: float) -> int:
    # Go's math.Round, not Python's banker's rounding.
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


def _rs_fraction(rs: Obj, deployment: Obj) -> int:
    """``getReplicaSetFraction``: this ReplicaSet's share of a resize, as a delta."""
    if replicas(deployment) == 0:
        return -replicas(rs)
    deployment_replicas = replicas(deployment) + max_surge(deployment)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        # Without the annotation assume the deployment's current size; the min/max in
        # get_proportion keeps the result within bounds either way.
        annotated = _count(deployment, "replicas")
    if annotated == 0:
        return 0
    new_size = replicas(rs) * deployment_replicas / annotated
    return _round_half_away(new_size) - replicas(rs)


def get_proportion(rs: Obj | None, deployment: Obj, to_add: int, added: int) -> int:
    """``GetProportion``: how many replicas to add to (or remove from) ``rs`` now."""
    if rs is None or replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _rs_fraction(rs, deployment)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)
