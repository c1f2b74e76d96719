"""The Deployment controller: declarative rollouts through one ReplicaSet per pod template.

Role
----
A Deployment owns ReplicaSets, one per distinct pod template: the **new** ReplicaSet carries
the current template (plus a ``pod-template-hash`` label and selector term, and is named
``<deployment>-<hash>``); every other one is **old**. The controller only ever changes
ReplicaSets' ``spec.replicas`` and annotations; the ReplicaSet controller turns that into pods,
and the ReplicaSets' status flows back into the Deployment's status.

Flow of one reconcile (upstream ``pkg/controller/deployment``: ``syncDeployment``)
-------------------------------------------------------------------------------
1. Read the Deployment; claim the namespace's ReplicaSets by selector (adopt orphans, release
   those that stopped matching).
2. Being deleted → only refresh the status. Then record pause/resume in the Progressing
   condition.
3. Paused, or a **scaling event** (an active ReplicaSet's ``desired-replicas`` annotation no
   longer equals ``spec.replicas``) → ``_sync``: spread the new size over the ReplicaSets in
   proportion to their size (``_scale``), clean up history when paused, refresh status.
4. Otherwise roll out by strategy:
   * **RollingUpdate**: create the new ReplicaSet if missing; scale it up as far as
     ``replicas + maxSurge`` allows; scale old ones down as far as
     ``replicas - maxUnavailable`` available pods allow (unhealthy old replicas first);
   * **Recreate**: scale every old ReplicaSet to zero, wait until none of their pods runs,
     then create and scale up the new one.
5. Status (``_sync_rollout_status``): counts summed over the ReplicaSets, the Available
   condition (at least ``replicas - maxUnavailable`` available), the Progressing condition
   (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
   ProgressDeadlineExceeded) and ReplicaFailure copied from the ReplicaSets. A rollout that is
   neither complete nor timed out asks to be looked at again when its deadline passes.

Revisions: every new ReplicaSet gets ``deployment.kubernetes.io/revision`` = highest old
revision + 1; a ReplicaSet that becomes new again (``kubectl rollout undo`` patches the old
template back, ``rollout restart`` changes a template annotation) gets a fresh revision and
remembers its earlier ones in ``revision-history``. The Deployment carries the new
ReplicaSet's revision. ``revisionHistoryLimit`` bounds how many old, empty ReplicaSets stay.

Writes go through the store only: ReplicaSets by compare-and-swap, the Deployment's status
through the status subresource and its revision annotation through the main resource (the
status subresource changes status only, where upstream's also takes annotations).

Wake-ups: a Deployment's own changes, and (``watches``) every change of a ReplicaSet it
controls, or of an orphan ReplicaSet its selector matches. Pods are not watched: their
changes reach the Deployment through their ReplicaSet's status (Recreate waits for old pods
to be gone by watching ``replicas`` and ``terminatingReplicas`` drop to zero there).
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson

from clusterapi import store
from clusterapi.api.selectors import LabelSelector, SelectorError, from_label_selector
from clusterapi.controllers import events, pods
from clusterapi.controllers.base import Controller, Key, Obj
from clusterapi.resources import by_kind
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

logger = logging.getLogger(__name__)

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


def _kind(api_version: str, name: str) -> Kind:
    kind = by_kind(api_version, name)
    assert kind is not None
    return kind


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


# --- templates and their hash -----------------------------------------------------------------


def _semantic(value: Any) -> Any:
    """A template for comparison: absent, null and empty collections are all "unset"."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            normal = _semantic(item)
            if normal is None or normal == {} or normal == []:
                continue
            out[key] = normal
        return out
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


def _without_hash(template: Obj | None) -> Any:
    template = copy.deepcopy(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return _semantic(template)


def equal_ignore_hash(first: Obj | None, second: Obj | None) -> bool:
    """Two pod templates are the same but for the ``pod-template-hash`` label."""
    return bool(_without_hash(first) == _without_hash(second))


_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619
# Upstream's rand.SafeEncodeString alphabet: no vowels, no look-alike characters.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _fnv1a(data: bytes, state: int = _FNV_OFFSET) -> int:
    for byte in data:
        state = ((state ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return state


def compute_hash(template: Obj, collision_count: int | None = None) -> str:
    """The ``pod-template-hash``: FNV-32a of the template, safe-encoded like upstream's.

    The template is hashed as canonical JSON (sorted keys, unset fields dropped) rather than
    Go's object dump, so values differ from a real cluster's, but the shape is the same (up
    to ten characters of ``bcdfg456789``) and so is the behaviour: equal templates hash
    alike, and a collision count changes the hash to escape a name collision.
    """
    state = _fnv1a(orjson.dumps(_without_hash(template), option=orjson.OPT_SORT_KEYS))
    if collision_count is not None:
        # Upstream writes the count as 4 little-endian bytes into an 8-byte buffer.
        state = _fnv1a((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4), state)
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in str(state))


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


# --- ReplicaSet sizing rules (deployment_util.go) ---------------------------------------------


def new_rs_new_replicas(deployment: Obj, all_rss: Iterable[Obj], new_rs: Obj) -> int:
    """How big the new ReplicaSet may grow now (``NewRSNewReplicas``)."""
    if _rolling(deployment) is None:
        return replicas(deployment)
    desired = replicas(deployment)
    current = sum(replicas(rs) for rs in all_rss)
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


# --- one reconcile ----------------------------------------------------------------------------


class _Rollout:
    """The state and steps of one reconcile of one Deployment.

    ``d`` is the Deployment as read, updated in place as this reconcile writes it; ReplicaSet
    dicts are likewise replaced in place by what each write returns, so every later step sees
    the latest object.
    """

    def __init__(self, deployment: Obj, rs_list: list[Obj], now: datetime) -> None:
        self.d = deployment
        self.rs_list = rs_list
        self.now = now
        self.namespace = str(deployment["metadata"]["namespace"])
        self.name = str(deployment["metadata"]["name"])
        self.requeue: float | None = None

    # --- writes ---------------------------------------------------------------------------

    def _write_deployment(self, *, annotations: bool = False, status: bool = False) -> None:
        """Persist this reconcile's changes to the revision annotation and/or the status."""
        kind = deployment_kind()
        uid = self.d["metadata"]["uid"]
        if annotations:
            value = _annotations(self.d).get(REVISION)

            def set_revision(current: Obj) -> Obj:
                if current["metadata"]["uid"] != uid:
                    raise ApiError(404, "NotFound", "the deployment was replaced")
                if value is not None:
                    _annotations(current)[REVISION] = value
                return current

            result = store.guaranteed_update(
                kind, self.namespace, self.name, set_revision, field_manager=COMPONENT
            )
            self.d["metadata"]["resourceVersion"] = result.obj["metadata"]["resourceVersion"]
        if status:
            new_status = copy.deepcopy(_status(self.d))

            def set_status(current: Obj) -> Obj:
                if current["metadata"]["uid"] != uid:
                    raise ApiError(404, "NotFound", "the deployment was replaced")
                current["status"] = new_status
                return current

            store.guaranteed_update(
                kind,
                self.namespace,
                self.name,
                set_status,
                subresource="status",
                field_manager=COMPONENT,
            )

    def _write_rs(self, rs: Obj, change: Obj) -> None:
        """Apply ``change`` to ``rs`` and refresh the dict in place with what was stored.

        ``change`` may set ``replicas`` and ``minReadySeconds`` and merge ``annotations``
        (annotations others put on the ReplicaSet meanwhile are kept).
        """
        uid = rs["metadata"]["uid"]

        def mutate(current: Obj) -> Obj:
            if current["metadata"]["uid"] != uid:
                raise ApiError(404, "NotFound", "the replica set was replaced")
            spec = current.setdefault("spec", {})
            for key in ("replicas", "minReadySeconds"):
                if key in change:
                    spec[key] = change[key]
            if "annotations" in change:
                _annotations(current).update(change["annotations"])
            return current

        result = store.guaranteed_update(
            replicaset_kind(),
            self.namespace,
            rs["metadata"]["name"],
            mutate,
            field_manager=COMPONENT,
        )
        rs.clear()
        rs.update(result.obj)

    def _event(self, type_: str, reason: str, message: str) -> None:
        events.record(self.d, type_, reason, message, component=COMPONENT)

    # --- finding the new and old ReplicaSets ----------------------------------------------

    def find_new_rs(self) -> Obj | None:
        """The oldest ReplicaSet whose template is the Deployment's (``FindNewReplicaSet``)."""
        template = _spec(self.d).get("template")
        for rs in sorted(self.rs_list, key=_created):
            if equal_ignore_hash(_spec(rs).get("template"), template):
                return rs
        return None

    def all_rss(self, *, create: bool) -> tuple[Obj | None, list[Obj]]:
        """The new ReplicaSet (created when asked) and all old ones, revisions synced."""
        found = self.find_new_rs()
        old = [rs for rs in self.rs_list if found is None or rs is not found]
        return self._new_rs(old, create=create), old

    def _set_new_rs_annotations(self, rs: Obj, new_revision: int, *, exists: bool) -> bool:
        """Copy the Deployment's annotations and bump the revision (upstream's
        ``SetNewReplicaSetAnnotations``); True when the ReplicaSet's annotations changed."""
        annotations = _annotations(rs)
        changed = False
        for key, value in ((self.d["metadata"].get("annotations")) or {}).items():
            if key in _SKIPPED_ANNOTATIONS or annotations.get(key) == value:
                continue
            annotations[key] = value
            changed = True
        old_text = annotations.get(REVISION)
        try:
            old_revision = int(old_text) if old_text else 0
        except ValueError:
            return changed
        if old_revision < new_revision:
            annotations[REVISION] = str(new_revision)
            changed = True
            if old_text is not None:
                # Becoming new again (a rollback): remember the revisions it served before.
                history = annotations.get(REVISION_HISTORY, "")
                entries = history.split(",") if history else []
                total = len(history) + len(old_text) + 1
                start = 0
                while total > MAX_REVISION_HISTORY_CHARS and start < len(entries):
                    total -= len(entries[start]) + 1
                    start += 1
                if not entries:
                    annotations[REVISION_HISTORY] = old_text
                elif total <= MAX_REVISION_HISTORY_CHARS:
                    annotations[REVISION_HISTORY] = ",".join([*entries[start:], old_text])
        if not exists:
            changed = self._set_replicas_annotations(annotations) or changed
        return changed

    def _set_replicas_annotations(self, annotations: dict[str, str]) -> bool:
        wanted = {
            DESIRED_REPLICAS: str(replicas(self.d)),
            MAX_REPLICAS: str(replicas(self.d) + max_surge(self.d)),
        }
        changed = any(annotations.get(k) != v for k, v in wanted.items())
        annotations.update(wanted)
        return changed

    def _set_deployment_revision(self, value: str) -> bool:
        annotations = _annotations(self.d)
        if annotations.get(REVISION) == value:
            return False
        annotations[REVISION] = value
        return True

    def _new_rs(self, old: list[Obj], *, create: bool) -> Obj | None:
        """``getNewReplicaSet``: sync the existing new ReplicaSet, or create it."""
        existing = self.find_new_rs()
        new_revision = max((revision(rs) for rs in old), default=0) + 1
        if existing is not None:
            candidate = copy.deepcopy(existing)
            annotations_changed = self._set_new_rs_annotations(candidate, new_revision, exists=True)
            min_ready = int(_spec(self.d).get("minReadySeconds") or 0)
            if annotations_changed or int(_spec(existing).get("minReadySeconds") or 0) != min_ready:
                # The Deployment's revision follows on the next round, woken by this write.
                self._write_rs(
                    existing,
                    {"minReadySeconds": min_ready, "annotations": _annotations(candidate)},
                )
                return existing
            annotate = self._set_deployment_revision(_annotations(existing).get(REVISION, ""))
            update_status = False
            if (
                _has_progress_deadline(self.d)
                and get_condition(_status(self.d), "Progressing") is None
            ):
                set_condition(
                    self.d.setdefault("status", {}),
                    _new_condition(
                        "Progressing",
                        "True",
                        REASON_FOUND_NEW_RS,
                        f'Found new replica set "{existing["metadata"]["name"]}"',
                        self.now,
                    ),
                )
                update_status = True
            if annotate or update_status:
                self._write_deployment(annotations=annotate, status=update_status)
            return existing
        if not create:
            return None
        return self._create_new_rs(old, new_revision)

    def _create_new_rs(self, old: list[Obj], new_revision: int) -> Obj | None:
        spec = _spec(self.d)
        collision_count = _status(self.d).get("collisionCount")
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = compute_hash(template, collision_count)
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), HASH_LABEL: pod_hash}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        name = f"{self.name}-{pod_hash}"
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": dict(template_meta["labels"]),
                "ownerReferences": [pods.owner_reference(self.d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        new_rs["spec"]["replicas"] = new_rs_new_replicas(self.d, [*old, new_rs], new_rs)
        self._set_new_rs_annotations(new_rs, new_revision, exists=False)
        already_exists = False
        try:
            created = store.create(
                replicaset_kind(), new_rs, namespace=self.namespace, field_manager=COMPONENT
            ).obj
        except ApiError as exc:
            if exc.reason == "AlreadyExists":
                created = store.get(replicaset_kind(), self.namespace, name)
                if _controlled(created, self.d) and equal_ignore_hash(
                    _spec(created).get("template"), spec.get("template")
                ):
                    already_exists = True
                else:
                    # A different template hashed to a taken name: count the collision so
                    # the next round hashes differently.
                    status = self.d.setdefault("status", {})
                    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                    self._write_deployment(status=True)
                    self.requeue = 0.0
                    return None
            elif pods.namespace_terminating(exc):
                return None
            else:
                message = f'Failed to create new replica set "{name}": {exc}'
                if _has_progress_deadline(self.d):
                    set_condition(
                        self.d.setdefault("status", {}),
                        _new_condition(
                            "Progressing", "False", REASON_RS_CREATE_ERROR, message, self.now
                        ),
                    )
                    self._write_deployment(status=True)
                self._event(events.WARNING, REASON_RS_CREATE_ERROR, message)
                self.requeue = FAILURE_RETRY_SECONDS
                return None
        self.rs_list.append(created)
        count = replicas(created)
        if not already_exists and count > 0:
            self._event(
                events.NORMAL,
                "ScalingReplicaSet",
                f"Scaled up replica set {name} from 0 to {count}",
            )
        annotate = self._set_deployment_revision(str(new_revision))
        update_status = False
        if not already_exists and _has_progress_deadline(self.d):
            set_condition(
                self.d.setdefault("status", {}),
                _new_condition(
                    "Progressing",
                    "True",
                    REASON_NEW_RS,
                    f'Created new replica set "{name}"',
                    self.now,
                ),
            )
            update_status = True
        if annotate or update_status:
            self._write_deployment(annotations=annotate, status=update_status)
        return created

    # --- scaling --------------------------------------------------------------------------

    def scale_rs(self, rs: Obj, new_scale: int, operation: str = "") -> bool:
        """Set a ReplicaSet's size and replica annotations; True when the size changed."""
        size_changed = replicas(rs) != new_scale
        annotations = dict(_annotations(copy.deepcopy(rs)))
        annotations_changed = self._set_replicas_annotations(annotations)
        if not size_changed and not annotations_changed:
            return False
        old_scale = replicas(rs)
        self._write_rs(rs, {"replicas": new_scale, "annotations": annotations})
        if size_changed:
            direction = operation or ("up" if old_scale < new_scale else "down")
            self._event(
                events.NORMAL,
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} "
                f"from {old_scale} to {new_scale}",
            )
        return size_changed

    def _scale_and_record(self, rs: Obj, new_scale: int) -> bool:
        # ``scaleReplicaSetAndRecordEvent``: nothing at all when the size is right already.
        if replicas(rs) == new_scale:
            return False
        return self.scale_rs(rs, new_scale)

    def scale(self, new_rs: Obj | None, old: list[Obj]) -> None:
        """Resize for a scaling event or a paused Deployment (``scale``)."""
        want = replicas(self.d)
        only = self._active_or_latest(new_rs, old)
        if only is not None:
            if replicas(only) != want:
                self._scale_and_record(only, want)
            return
        if is_saturated(self.d, new_rs):
            for rs in _active(old):
                self._scale_and_record(rs, 0)
            return
        if _rolling(self.d) is None:
            return
        # Several ReplicaSets hold pods mid-rollout: spread the change in proportion to
        # their sizes, larger first, newer first when growing and older first when shrinking.
        active = _active([*old, new_rs])
        allowed = want + max_surge(self.d) if want > 0 else 0
        to_add = allowed - sum(replicas(rs) for rs in active)
        operation = ""
        if to_add > 0:
            newest_first = sorted(active, key=_created, reverse=True)
            active = sorted(newest_first, key=replicas, reverse=True)
            operation = "up"
        elif to_add < 0:
            oldest_first = sorted(active, key=_created)
            active = sorted(oldest_first, key=replicas, reverse=True)
            operation = "down"
        added = 0
        sizes: list[int] = []
        for rs in active:
            if to_add != 0:
                proportion = get_proportion(rs, self.d, to_add, added)
                sizes.append(replicas(rs) + proportion)
                added += proportion
            else:
                sizes.append(replicas(rs))
        for index, rs in enumerate(active):
            size = sizes[index]
            if index == 0 and to_add != 0:
                # Leftovers of the rounding go to (or come from) the largest ReplicaSet.
                size = max(size + to_add - added, 0)
            self.scale_rs(rs, size, operation)

    def _active_or_latest(self, new_rs: Obj | None, old: list[Obj]) -> Obj | None:
        """The only active ReplicaSet, or the newest when none is (``FindActiveOrLatest``)."""
        if new_rs is None and not old:
            return None
        newest_first = sorted(old, key=_created, reverse=True)
        active = _active([*newest_first, new_rs])
        if not active:
            return new_rs if new_rs is not None else newest_first[0]
        if len(active) == 1:
            return active[0]
        return None

    def is_scaling_event(self) -> bool:
        """An active ReplicaSet was sized for a different ``spec.replicas``."""
        new_rs, old = self.all_rss(create=False)
        for rs in _active([*old, new_rs]):
            desired = _int_annotation(rs, DESIRED_REPLICAS)
            if desired is not None and desired != replicas(self.d):
                return True
        return False

    # --- strategies -----------------------------------------------------------------------

    def rollout_rolling(self) -> None:
        """``rolloutRolling``: surge the new ReplicaSet, then drain old ones."""
        new_rs, old = self.all_rss(create=True)
        if new_rs is None:
            return
        all_rss = [*old, new_rs]
        if self._reconcile_new_rs(all_rss, new_rs):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if self._reconcile_old_rss(all_rss, _active(old), new_rs):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if deployment_complete(self.d, _status(self.d)):
            self.cleanup(old)
        self.sync_rollout_status(all_rss, new_rs)

    def _reconcile_new_rs(self, all_rss: list[Obj], new_rs: Obj) -> bool:
        want = replicas(self.d)
        if replicas(new_rs) == want:
            return False
        if replicas(new_rs) > want:
            return self._scale_and_record(new_rs, want)
        return self._scale_and_record(new_rs, new_rs_new_replicas(self.d, all_rss, new_rs))

    def _reconcile_old_rss(self, all_rss: list[Obj], old: list[Obj], new_rs: Obj) -> bool:
        """Scale old ReplicaSets down as far as availability allows (``reconcileOldReplicaSets``).

        At most ``all - minAvailable - newUnavailable`` pods may go: counting the new
        ReplicaSet's unavailable pods keeps a crash-looping new template from draining the
        old, working pods.
        """
        if sum(replicas(rs) for rs in old) == 0:
            return False
        all_count = sum(replicas(rs) for rs in all_rss)
        min_available = replicas(self.d) - max_unavailable(self.d)
        new_unavailable = replicas(new_rs) - _count(new_rs, "availableReplicas")
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = self._cleanup_unhealthy(old, max_scaled_down)
        scaled = self._scale_down_old_for_rolling([*old, new_rs], old)
        return cleaned + scaled > 0

    def _cleanup_unhealthy(self, old: list[Obj], max_cleanup: int) -> int:
        """Drop old replicas that are not available anyway: it costs no availability."""
        total = 0
        for rs in sorted(old, key=_created):
            if total >= max_cleanup:
                break
            size, available = replicas(rs), _count(rs, "availableReplicas")
            if size == 0 or size == available:
                continue
            down = min(max_cleanup - total, size - available)
            self._scale_and_record(rs, size - down)
            total += down
        return total

    def _scale_down_old_for_rolling(self, all_rss: list[Obj], old: list[Obj]) -> int:
        """Remove old replicas while more than ``replicas - maxUnavailable`` are available."""
        min_available = replicas(self.d) - max_unavailable(self.d)
        available = sum(_count(rs, "availableReplicas") for rs in all_rss)
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in sorted(old, key=_created):
            if total >= budget:
                break
            if replicas(rs) == 0:
                continue
            down = min(replicas(rs), budget - total)
            self._scale_and_record(rs, replicas(rs) - down)
            total += down
        return total

    def rollout_recreate(self, pod_map: dict[str, list[Obj]]) -> None:
        """``rolloutRecreate``: all old pods gone before the new ReplicaSet grows."""
        new_rs, old = self.all_rss(create=False)
        all_rss = [*old, new_rs] if new_rs is not None else list(old)
        scaled_down = False
        for rs in _active(old):
            scaled_down = self._scale_and_record(rs, 0) or scaled_down
        if scaled_down or self._old_pods_running(new_rs, old, pod_map):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old = self.all_rss(create=True)
            all_rss = [*old, new_rs] if new_rs is not None else list(old)
        if new_rs is not None:
            self._scale_and_record(new_rs, replicas(self.d))
        if deployment_complete(self.d, _status(self.d)):
            self.cleanup(old)
        self.sync_rollout_status(all_rss, new_rs)

    @staticmethod
    def _old_pods_running(
        new_rs: Obj | None, old: list[Obj], pod_map: dict[str, list[Obj]]
    ) -> bool:
        if sum(_count(rs, "replicas") for rs in old) > 0:
            return True
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        for rs_uid, owned in pod_map.items():
            if rs_uid == new_uid:
                continue
            # Finished pods do not count; Unknown ones might still run, so they do.
            if any(pods.phase(p) not in pods.TERMINAL_PHASES for p in owned):
                return True
        return False

    def sync(self) -> None:
        """``sync``: scaling events and paused Deployments (no new ReplicaSet is made)."""
        new_rs, old = self.all_rss(create=False)
        self.scale(new_rs, old)
        if _spec(self.d).get("paused"):
            self.cleanup(old)
        self.sync_status([*old, new_rs] if new_rs is not None else list(old), new_rs)

    def cleanup(self, old: list[Obj]) -> None:
        """Delete the oldest empty ReplicaSets beyond ``revisionHistoryLimit``."""
        limit = _revision_history_limit(self.d)
        if limit is None:
            return
        cleanable = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
        surplus = len(cleanable) - limit
        if surplus <= 0:
            return
        cleanable.sort(key=lambda rs: (revision(rs), _created(rs)))
        for rs in cleanable[:surplus]:
            meta = rs["metadata"]
            if (
                _count(rs, "replicas") != 0
                or replicas(rs) != 0
                or int(meta.get("generation") or 0) > _count(rs, "observedGeneration")
            ):
                continue
            try:
                store.delete(
                    replicaset_kind(), self.namespace, meta["name"], precondition_uid=meta["uid"]
                )
            except ApiError as exc:
                if exc.reason not in ("NotFound", "Conflict"):
                    raise

    # --- status ---------------------------------------------------------------------------

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


# --- the reconcile ----------------------------------------------------------------------------


def _selector(deployment: Obj) -> LabelSelector:
    return from_label_selector(_spec(deployment).get("selector"))


def _claim_replicasets(deployment: Obj, selector: LabelSelector) -> list[Obj]:
    """The namespace's ReplicaSets this Deployment controls, after adopting and releasing."""
    kind = replicaset_kind()
    candidates = store.list_objects(kind, deployment["metadata"]["namespace"]).objects()
    return pods.claim(deployment, candidates, kind, selector, field_manager=COMPONENT)


def _pod_map(deployment: Obj, rs_list: list[Obj], selector: LabelSelector) -> dict[str, list[Obj]]:
    """The Deployment's pods grouped by the uid of the ReplicaSet controlling them."""
    uids: dict[str, list[Obj]] = {rs["metadata"]["uid"]: [] for rs in rs_list}
    kind = pods.pod_kind()
    for pod in store.list_objects(kind, deployment["metadata"]["namespace"]).objects():
        ref = pods.controller_ref(pod)
        if (
            ref is not None
            and ref.get("uid") in uids
            and selector.matches(pod["metadata"].get("labels"))
        ):
            uids[str(ref["uid"])].append(pod)
    return uids


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one Deployment (see the module docstring); returns when to look again."""
    try:
        deployment = store.get(deployment_kind(), namespace, name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    now = pods.utcnow()
    raw_selector = _spec(deployment).get("selector")
    if isinstance(raw_selector, dict) and not (
        raw_selector.get("matchLabels") or raw_selector.get("matchExpressions")
    ):
        # An empty selector would select every pod of the namespace: refuse to act on it.
        events.record(
            deployment,
            events.WARNING,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
            component=COMPONENT,
        )
        rollout = _Rollout(deployment, [], now)
        generation = int(deployment["metadata"].get("generation") or 0)
        if _count(deployment, "observedGeneration") < generation:
            deployment.setdefault("status", {})["observedGeneration"] = generation
            rollout._write_deployment(status=True)
        return None
    try:
        selector = _selector(deployment)
    except SelectorError as exc:
        logger.warning("deployment %s/%s: invalid selector: %s", namespace, name, exc)
        return None
    rs_list = _claim_replicasets(deployment, selector)
    rollout = _Rollout(deployment, rs_list, now)
    if deployment["metadata"].get("deletionTimestamp"):
        new_rs, old = rollout.all_rss(create=False)
        rollout.sync_status([*old, new_rs] if new_rs is not None else old, new_rs)
        return None
    rollout.check_paused_conditions()
    if _spec(deployment).get("paused") or rollout.is_scaling_event():
        rollout.sync()
        return rollout.requeue
    strategy = (_spec(deployment).get("strategy") or {}).get("type", "RollingUpdate")
    if strategy == "Recreate":
        rollout.rollout_recreate(_pod_map(deployment, rs_list, selector))
    else:
        rollout.rollout_rolling()
    return rollout.requeue


def replicaset_owners(rs: Obj) -> Iterable[Key]:
    """The Deployments a ReplicaSet's change wakes: its controller, or for an orphan every match."""
    meta = rs.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    ref = pods.controller_ref(rs)
    if ref is not None:
        if ref.get("kind") == "Deployment":
            yield (namespace, str(ref.get("name", "")))
        return
    if meta.get("deletionTimestamp") or not namespace:
        return
    for deployment in store.list_objects(deployment_kind(), namespace).objects():
        try:
            if _selector(deployment).matches(meta.get("labels")):
                yield (namespace, deployment["metadata"]["name"])
        except SelectorError:
            continue


CONTROLLER = Controller(
    name="deployment",
    kind="Deployment",
    reconcile=reconcile,
    watches={"ReplicaSet": replicaset_owners},
)
