"""The Deployment's status: counts, Available, Progressing and ReplicaFailure.

The status is recomputed from the ReplicaSets on every reconcile (``calculate_status``):
counts summed over them, and Available when at least ``replicas - maxUnavailable`` pods are
available. A rollout (``sync_rollout_status``) also keeps the Progressing condition, when
``progressDeadlineSeconds`` is set: NewReplicaSetAvailable once complete, ReplicaSetUpdated
while pods move, ProgressDeadlineExceeded once the condition has not moved for the deadline;
a rollout neither complete nor timed out asks to be looked at again when its deadline passes.
ReplicaFailure is copied from the ReplicaSets (the new one's first). Pause and resume are
recorded in Progressing too, so a paused Deployment never times out.

A status that did not change is not written, so a steady Deployment costs no writes.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

from clusterapi.controllers import pods
from clusterapi.controllers.base import Obj
from clusterapi.controllers.deployment.state import RolloutState
from clusterapi.controllers.deployment.util import (
    REASON_MIN_AVAILABLE,
    REASON_MIN_UNAVAILABLE,
    REASON_NEW_RS_AVAILABLE,
    REASON_PAUSED,
    REASON_RESUMED,
    REASON_RS_UPDATED,
    REASON_TIMED_OUT,
    _count,
    _has_progress_deadline,
    _spec,
    _status,
    max_unavailable,
    replicas,
)

# --- conditions -------------------------------------------------------------------------------


def get_condition(status: Obj, type_: str) -> Obj | None:
    for condition in status.get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == type_:
            return condition
    return None


def _new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    stamp = pods.format_time(now)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, condition: Obj) -> None:
    """``SetDeploymentCondition``: replace the condition of that type, unless unchanged.

    A condition with the same status and reason is left alone (keeping its timestamps); one
    with the same status keeps its lastTransitionTime.
    """
    current = get_condition(status, condition["type"])
    if (
        current is not None
        and current.get("status") == condition["status"]
        and current.get("reason") == condition["reason"]
    ):
        return
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: Obj, type_: str) -> None:
    kept = [c for c in status.get("conditions") or () if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def deployment_complete(deployment: Obj, status: Obj) -> bool:
    """All desired replicas updated and available, and no old pods (``DeploymentComplete``)."""
    want = replicas(deployment)
    return (
        int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0)
        >= int(deployment["metadata"].get("generation") or 0)
    )


def deployment_progressing(deployment: Obj, status: Obj) -> bool:
    """New pods came up or old ones went since the last status (``DeploymentProgressing``)."""
    old = _status(deployment)

    def count(s: Obj, key: str) -> int:
        return int(s.get(key) or 0)

    old_old = count(old, "replicas") - count(old, "updatedReplicas")
    new_old = count(status, "replicas") - count(status, "updatedReplicas")
    return (
        count(status, "updatedReplicas") > count(old, "updatedReplicas")
        or new_old < old_old
        or count(status, "readyReplicas") > count(old, "readyReplicas")
        or count(status, "availableReplicas") > count(old, "availableReplicas")
    )


def deployment_timed_out(deployment: Obj, status: Obj, now: datetime) -> bool:
    """The Progressing condition has not moved for ``progressDeadlineSeconds``."""
    if not _has_progress_deadline(deployment):
        return False
    condition = get_condition(status, "Progressing")
    if condition is None or condition.get("reason") == REASON_NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == REASON_TIMED_OUT:
        return True
    since = pods.parse_time(condition.get("lastUpdateTime"))
    if since is None:
        return False
    deadline = int(_spec(deployment).get("progressDeadlineSeconds") or 0)
    return since + timedelta(seconds=deadline) < now


class ProgressSteps(RolloutState):
    """The status steps of a rollout (upstream ``sync.go`` and ``progress.go``)."""

    def calculate_status(self, all_rss: list[Obj], new_rs: Obj | None) -> Obj:
        """The Deployment's status from its ReplicaSets (``calculateStatus``)."""
        available = sum(_count(rs, "availableReplicas") for rs in all_rss)
        unavailable = max(sum(replicas(rs) for rs in all_rss) - available, 0)
        terminating = [rs for rs in all_rss if "terminatingReplicas" in _status(rs)]
        old_status = _status(self.d)
        status: Obj = {}
        # Zero counts are omitted, as Go's omitempty serialises them.
        for key, value in (
            ("observedGeneration", int(self.d["metadata"].get("generation") or 0)),
            ("replicas", sum(_count(rs, "replicas") for rs in all_rss)),
            ("updatedReplicas", _count(new_rs, "replicas")),
            ("readyReplicas", sum(_count(rs, "readyReplicas") for rs in all_rss)),
            ("availableReplicas", available),
            ("unavailableReplicas", unavailable),
        ):
            if value:
                status[key] = value
        if terminating:
            status["terminatingReplicas"] = sum(
                _count(rs, "terminatingReplicas") for rs in terminating
            )
        conditions = [copy.deepcopy(c) for c in old_status.get("conditions") or ()]
        if conditions:
            status["conditions"] = conditions
        if old_status.get("collisionCount") is not None:
            status["collisionCount"] = old_status["collisionCount"]
        if available >= replicas(self.d) - max_unavailable(self.d):
            condition = _new_condition(
                "Available",
                "True",
                REASON_MIN_AVAILABLE,
                "Deployment has minimum availability.",
                self.now,
            )
        else:
            condition = _new_condition(
                "Available",
                "False",
                REASON_MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.",
                self.now,
            )
        set_condition(status, condition)
        return _ordered_status(status)

    def sync_status(self, all_rss: list[Obj], new_rs: Obj | None) -> None:
        """``syncDeploymentStatus``: counts and Available only."""
        status = self.calculate_status(all_rss, new_rs)
        if status != _status(self.d):
            self.d["status"] = status
            self._write_deployment(status=True)

    def sync_rollout_status(self, all_rss: list[Obj], new_rs: Obj | None) -> None:
        """``syncRolloutStatus``: counts, Available, Progressing and ReplicaFailure."""
        status = self.calculate_status(all_rss, new_rs)
        if not _has_progress_deadline(self.d):
            remove_condition(status, "Progressing")
        current = get_condition(_status(self.d), "Progressing")
        complete_before = (
            int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
            and current is not None
            and current.get("reason") == REASON_NEW_RS_AVAILABLE
        )
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else None
        if _has_progress_deadline(self.d) and not complete_before:
            if deployment_complete(self.d, status):
                message = (
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if rs_name
                    else f'Deployment "{self.name}" has successfully progressed.'
                )
                set_condition(
                    status,
                    _new_condition(
                        "Progressing", "True", REASON_NEW_RS_AVAILABLE, message, self.now
                    ),
                )
            elif deployment_progressing(self.d, status):
                message = (
                    f'ReplicaSet "{rs_name}" is progressing.'
                    if rs_name
                    else f'Deployment "{self.name}" is progressing.'
                )
                condition = _new_condition(
                    "Progressing", "True", REASON_RS_UPDATED, message, self.now
                )
                # Progress refreshes lastUpdateTime even when the reason stays the same
                # (set_condition alone would keep the old condition).
                if current is not None:
                    if current.get("status") == "True":
                        condition["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, "Progressing")
                set_condition(status, condition)
            elif deployment_timed_out(self.d, status, self.now):
                message = (
                    f'ReplicaSet "{rs_name}" has timed out progressing.'
                    if rs_name
                    else f'Deployment "{self.name}" has timed out progressing.'
                )
                set_condition(
                    status,
                    _new_condition("Progressing", "False", REASON_TIMED_OUT, message, self.now),
                )
        failure = self._replica_failure(all_rss, new_rs)
        if failure is not None:
            set_condition(status, failure)
        else:
            remove_condition(status, "ReplicaFailure")
        status = _ordered_status(status)
        if status == _status(self.d):
            self.requeue = self._stuck_requeue(status)
            return
        self.d["status"] = status
        self._write_deployment(status=True)

    def _replica_failure(self, all_rss: list[Obj], new_rs: Obj | None) -> Obj | None:
        """The new ReplicaSet's ReplicaFailure condition first, else an old one's."""
        for rs in [new_rs] if new_rs is not None else []:
            condition = get_condition(_status(rs), "ReplicaFailure")
            if condition is not None:
                return _from_rs_condition(condition)
        for rs in all_rss:
            condition = get_condition(_status(rs), "ReplicaFailure")
            if condition is not None:
                return _from_rs_condition(condition)
        return None

    def _stuck_requeue(self, status: Obj) -> float | None:
        """When to look again at a rollout that shows no progress (``requeueStuckDeployment``)."""
        current = get_condition(_status(self.d), "Progressing")
        if not _has_progress_deadline(self.d) or current is None:
            return None
        if deployment_complete(self.d, status) or current.get("reason") == REASON_TIMED_OUT:
            return None
        since = pods.parse_time(current.get("lastUpdateTime"))
        if since is None:
            return None
        deadline = int(_spec(self.d).get("progressDeadlineSeconds") or 0)
        after = (since + timedelta(seconds=deadline) - self.now).total_seconds()
        return max(after, 1.0)

    def check_paused_conditions(self) -> None:
        """Mark pause and resume in Progressing, so a pause never counts as lack of progress."""
        if not _has_progress_deadline(self.d):
            return
        current = get_condition(_status(self.d), "Progressing")
        if current is not None and current.get("reason") == REASON_TIMED_OUT:
            return
        paused_recorded = current is not None and current.get("reason") == REASON_PAUSED
        paused = bool(_spec(self.d).get("paused"))
        if paused and not paused_recorded:
            condition = _new_condition(
                "Progressing", "Unknown", REASON_PAUSED, "Deployment is paused", self.now
            )
        elif not paused and paused_recorded:
            condition = _new_condition(
                "Progressing", "Unknown", REASON_RESUMED, "Deployment is resumed", self.now
            )
        else:
            return
        set_condition(self.d.setdefault("status", {}), condition)
        self._write_deployment(status=True)


def _from_rs_condition(condition: Obj) -> Obj:
    stamp = condition.get("lastTransitionTime")
    return {
        "type": condition.get("type"),
        "status": condition.get("status"),
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": condition.get("reason"),
        "message": condition.get("message"),
    }


_STATUS_ORDER = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
    "terminatingReplicas",
    "conditions",
    "collisionCount",
)


def _ordered_status(status: Obj) -> Obj:
    """The status in DeploymentStatus field order (as upstream serialises it)."""
    ordered = {k: status[k] for k in _STATUS_ORDER if k in status}
    ordered.update(status)
    return ordered
