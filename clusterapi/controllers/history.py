"""ControllerRevision history shared by the StatefulSet and DaemonSet controllers.

Role
----
StatefulSets and DaemonSets keep their template history in ``apps/v1`` ControllerRevisions
(upstream ``pkg/controller/history`` and the two controllers' ``getRevisions``/``Truncate``):

* a revision's ``data`` is what ``kubectl rollout undo`` patches back onto the owner: a
  strategic-merge patch ``{"spec": {"template": {..., "$patch": "replace"}}}`` (kubectl's
  ``getStatefulSetPatch``/``getDaemonSetPatch`` build the same shape to compare, and send
  ``data`` as the patch body);
* a revision is named ``<owner>-<hash>``, where the hash is a short safe-encoded FNV-32 of
  ``data`` plus the owner's ``collisionCount``; it carries the template's labels (kubectl
  lists an owner's revisions by the owner's selector) plus ``controller-revision-hash``, and a
  controller ownerReference to its owner;
* ``revision`` numbers grow: a new template gets the highest number + 1, and going back to an
  old template (a rollback) renumbers that old revision instead of creating a twin.

Flow for a controller (``sync_revisions``): list and claim the owner's revisions, find or
create the one for the current template (bumping ``collisionCount`` when a different revision
already holds the name), pick the current revision named in the status, and later
``truncate`` the history to ``revisionHistoryLimit`` non-live revisions, oldest first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson

from clusterapi import store
from clusterapi.controllers import pods
from clusterapi.core.selectors import LabelSelector
from clusterapi.resources import by_kind
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]

HASH_LABEL = "controller-revision-hash"
PATCH_DIRECTIVE = "$patch"
DEFAULT_HISTORY_LIMIT = 10

_FNV32_OFFSET = 2166136261
_FNV32_PRIME = 16777619
# Upstream's rand.SafeEncodeString alphabet: no vowels, no look-alike characters.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class CollisionError(Exception):
    """A different revision holds the name the current template hashes to.

    The owner's ``collisionCount`` has been bumped; the next reconcile hashes differently.
    """


def revision_kind() -> Kind:
    """The apps/v1 ControllerRevision kind."""
    kind = by_kind("apps/v1", "ControllerRevision")
    assert kind is not None
    return kind


# --- revision data and its hash -----------------------------------------------------------------


def _semantic(value: Any) -> Any:
    """``value`` for comparison: absent, null and empty collections all mean "unset"."""
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


def patch_data(owner: Obj) -> Obj:
    """The revision ``data`` for the owner's current template (a replace patch)."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template[PATCH_DIRECTIVE] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision records (its ``data`` without the patch directive)."""
    data = revision.get("data") or {}
    template = copy.deepcopy(((data.get("spec") or {}).get("template")) or {})
    template.pop(PATCH_DIRECTIVE, None)
    return template


def _fnv32(data: bytes, state: int = _FNV32_OFFSET) -> int:
    # FNV-1 (multiply, then xor), as upstream's hash/fnv.New32 used by HashControllerRevision.
    for byte in data:
        state = ((state * _FNV32_PRIME) & 0xFFFFFFFF) ^ byte
    return state


def hash_revision(data: Obj, collision_count: int | None = None) -> str:
    """A short, stable name suffix for ``data`` (``HashControllerRevision`` in spirit).

    ``data`` is hashed as canonical JSON (sorted keys, unset fields dropped), so equal templates
    hash alike whatever the order their fields were written in; the collision count, written
    as its decimal digits as upstream does, moves the hash off a name that is taken.
    """
    state = _fnv32(orjson.dumps(_semantic(data), option=orjson.OPT_SORT_KEYS))
    if collision_count is not None:
        state = _fnv32(str(collision_count).encode(), state)
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in str(state))


def equal_data(first: Obj, second: Obj) -> bool:
    """Two revisions record the same template."""
    return bool(_semantic(first.get("data")) == _semantic(second.get("data")))


def revision_number(revision: Obj) -> int:
    try:
        return int(revision.get("revision") or 0)
    except (TypeError, ValueError):
        return 0


def _sort_key(revision: Obj) -> tuple[int, str, str]:
    meta = revision["metadata"]
    return (revision_number(revision), str(meta.get("creationTimestamp", "")), meta["name"])


# --- listing, creating, renumbering -------------------------------------------------------------


def owned_revisions(owner: Obj, selector: LabelSelector, *, field_manager: str) -> list[Obj]:
    """The owner's revisions, oldest revision number first.

    Orphans matching the selector are adopted and revisions that stopped matching are
    released, as for pods (upstream ``ClaimControllerRevisions``).
    """
    namespace = owner["metadata"]["namespace"]
    kind = revision_kind()
    candidates = store.list_objects(kind, namespace).objects()
    claimed = pods.claim(owner, candidates, kind, selector, field_manager=field_manager)
    return sorted(claimed, key=_sort_key)


def next_revision(revisions: list[Obj]) -> int:
    """The number the next new revision gets."""
    return max((revision_number(r) for r in revisions), default=0) + 1


def new_revision(owner: Obj, number: int, collision_count: int) -> Obj:
    """The revision object for the owner's current template (not yet stored)."""
    data = patch_data(owner)
    suffix = hash_revision(data, collision_count)
    template_labels = ((owner["spec"].get("template") or {}).get("metadata") or {}).get("labels")
    labels = {**(template_labels or {}), HASH_LABEL: suffix}
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{owner['metadata']['name']}-{suffix}",
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [pods.owner_reference(owner)],
        },
        "data": data,
        "revision": number,
    }


@dataclass
class Revisions:
    """The outcome of ``sync_revisions``."""

    current: Obj
    update: Obj
    all: list[Obj]
    collision_count: int


def sync_revisions(
    owner: Obj,
    selector: LabelSelector,
    current_name: str,
    *,
    field_manager: str,
) -> Revisions:
    """Find or create the revision of the owner's template (``getStatefulSetRevisions``).

    * an existing revision with the same data is reused; when it is not the newest, it is
      renumbered to the next number (a rollback makes an old template the newest again);
    * otherwise a new revision is created; if its name is taken by different data, the owner's
      ``status.collisionCount`` is bumped through the status subresource and ``CollisionError``
      is raised, so the caller looks again with the new count;
    * the current revision is the one ``current_name`` (the status) names, else the update one.
    """
    revisions = owned_revisions(owner, selector, field_manager=field_manager)
    collision_count = int((owner.get("status") or {}).get("collisionCount") or 0)
    candidate = new_revision(owner, next_revision(revisions), collision_count)
    equal = [r for r in revisions if equal_data(r, candidate)]
    if equal:
        update = equal[-1]
        if update["metadata"]["uid"] != revisions[-1]["metadata"]["uid"]:
            update = _renumber(update, next_revision(revisions), field_manager)
            revisions = sorted(
                [r for r in revisions if r["metadata"]["uid"] != update["metadata"]["uid"]]
                + [update],
                key=_sort_key,
            )
    else:
        update = _create(owner, candidate, field_manager)
        revisions = sorted([*revisions, update], key=_sort_key)
    current = next((r for r in revisions if r["metadata"]["name"] == current_name), update)
    return Revisions(current, update, revisions, collision_count)


def _renumber(revision: Obj, number: int, field_manager: str) -> Obj:
    meta = revision["metadata"]

    def mutate(current: Obj) -> Obj:
        current["revision"] = number
        return current

    return store.guaranteed_update(
        revision_kind(), meta["namespace"], meta["name"], mutate, field_manager=field_manager
    ).obj


def _create(owner: Obj, candidate: Obj, field_manager: str) -> Obj:
    kind = revision_kind()
    namespace = owner["metadata"]["namespace"]
    try:
        return store.create(kind, candidate, namespace=namespace, field_manager=field_manager).obj
    except ApiError as exc:
        if exc.reason != "AlreadyExists":
            raise
    existing = store.get(kind, namespace, candidate["metadata"]["name"])
    if pods.is_controlled_by(existing, owner) and equal_data(existing, candidate):
        # Another reconcile of the same owner created it first: it is ours.
        return existing
    _bump_collision_count(owner, field_manager)
    raise CollisionError(candidate["metadata"]["name"])


def _bump_collision_count(owner: Obj, field_manager: str) -> None:
    kind = by_kind(owner["apiVersion"], owner["kind"])
    assert kind is not None
    meta = owner["metadata"]
    uid = meta["uid"]

    def mutate(current: Obj) -> Obj:
        if current["metadata"]["uid"] != uid:
            raise ApiError(404, "NotFound", "the object was replaced")
        status = current.setdefault("status", {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        return current

    store.guaranteed_update(
        kind,
        meta["namespace"],
        meta["name"],
        mutate,
        subresource="status",
        field_manager=field_manager,
    )


# --- truncation ---------------------------------------------------------------------------------


def history_limit(owner: Obj) -> int:
    raw = (owner.get("spec") or {}).get("revisionHistoryLimit")
    return DEFAULT_HISTORY_LIMIT if raw is None else max(int(raw), 0)


def truncate(revisions: list[Obj], live: set[str], limit: int) -> list[str]:
    """Delete the oldest non-live revisions beyond ``limit``; returns the names deleted.

    Live revisions (the current and update revisions and any a pod still runs) are never
    deleted, whatever the limit.
    """
    history = [r for r in sorted(revisions, key=_sort_key) if r["metadata"]["name"] not in live]
    surplus = len(history) - limit
    if surplus <= 0:
        return []
    kind = revision_kind()
    deleted: list[str] = []
    for revision in history[:surplus]:
        meta = revision["metadata"]
        try:
            store.delete(kind, meta["namespace"], meta["name"], precondition_uid=meta["uid"])
        except ApiError as exc:
            if exc.reason not in ("NotFound", "Conflict"):
                raise
        deleted.append(meta["name"])
    return deleted
