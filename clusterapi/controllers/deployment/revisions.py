"""Revisions: which ReplicaSet is new, creating it, and the history of old ones.

The **new** ReplicaSet is the oldest one whose pod template equals the Deployment's, ignoring
the ``pod-template-hash`` label (``find_new_rs``); every other one is **old**. When none
exists, a rollout creates ``<deployment>-<hash>`` with the hash added to its labels and
selector (``compute_hash``; a name taken by a different template bumps
``status.collisionCount`` so the next round hashes differently).

Every new ReplicaSet gets ``deployment.kubernetes.io/revision`` = highest old revision + 1; a
ReplicaSet that becomes new again (``kubectl rollout undo`` patches the old template back,
``rollout restart`` changes a template annotation) gets a fresh revision and remembers its
earlier ones in ``revision-history``. The Deployment carries the new ReplicaSet's revision.
``cleanup`` deletes the oldest empty old ReplicaSets beyond ``revisionHistoryLimit``.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from clusterapi import store
from clusterapi.controllers import events, pods
from clusterapi.controllers.base import Obj
from clusterapi.controllers.deployment.progress import (
    ProgressSteps,
    _new_condition,
    get_condition,
    set_condition,
)
from clusterapi.controllers.deployment.util import (
    _SKIPPED_ANNOTATIONS,
    COMPONENT,
    DESIRED_REPLICAS,
    FAILURE_RETRY_SECONDS,
    HASH_LABEL,
    MAX_REPLICAS,
    MAX_REVISION_HISTORY_CHARS,
    REASON_FOUND_NEW_RS,
    REASON_NEW_RS,
    REASON_RS_CREATE_ERROR,
    REVISION,
    REVISION_HISTORY,
    _annotations,
    _controlled,
    _count,
    _created,
    _has_progress_deadline,
    _revision_history_limit,
    _spec,
    _status,
    max_surge,
    new_rs_new_replicas,
    replicas,
    replicaset_kind,
    revision,
)
from clusterapi.store.errors import ApiError

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


class RevisionSteps(ProgressSteps):
    """Finding, creating and annotating the new ReplicaSet; pruning old ones."""

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
