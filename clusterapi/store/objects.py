"""The store's operations (see the package docstring for the flow of one write)."""

from __future__ import annotations

import base64
import contextlib
import contextvars
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.db import transaction

from clusterapi.admission import admit, admit_delete
from clusterapi.core.models import Change, Compaction
from clusterapi.resources import stored_rows
from clusterapi.resources.registry import Kind
from clusterapi.store import errors, sql
from clusterapi.store.apply import managed_fields_after_update
from clusterapi.store.errors import ApiError
from clusterapi.store.group import GroupCommit
from clusterapi.store.patch import clone

Obj = dict[str, Any]

# Metadata fields the server owns: a client cannot set them on create, nor change them later.
_SERVER_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")
_METADATA_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
# generateName suffixes use upstream's alphabet (no vowels, no confusable characters).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_CONFLICT_RETRIES = 16


# The last second ``now`` formatted: a create asks for the time several times (creation,
# managedFields, admission), and formatting it each time was 2% of the request.
_now_text: tuple[int, str] = (0, "")


def now() -> str:
    """The current time as Kubernetes serialises a metav1.Time (RFC 3339, UTC, seconds)."""
    global _now_text
    second = int(time.time())
    cached = _now_text
    if cached[0] != second:
        cached = _now_text = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return cached[1]


def encode(obj: Obj) -> str:
    """The object's JSON as served: apiVersion, kind, metadata first, as upstream orders them."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        ordered_meta = {k: metadata[k] for k in _METADATA_ORDER if k in metadata}
        ordered_meta.update(metadata)
        obj["metadata"] = ordered_meta
    ordered: Obj = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    ordered.update(obj)
    return orjson.dumps(ordered).decode()


def decode(data: str) -> Obj:
    result: Obj = orjson.loads(data)
    return result


@dataclass
class WriteResult:
    """The outcome of a write: the object as stored (or as it would be, for a dry run)."""

    obj: Obj
    changed: bool = True
    created: bool = False
    deleted: bool = False
    warnings: list[str] = field(default_factory=list)
    # The object before an update (for the audit log's diff).
    previous: Obj | None = None


@dataclass
class ListResult:
    """A page of a list: the objects' JSON as stored, and the list's metadata."""

    raw: list[str]
    resource_version: int
    # Each object's kept Table row (``clusterapi.resources.stored_rows``), when asked for.
    table_rows: list[str] | None = None
    continue_token: str = ""
    remaining: int | None = None
    _objects: list[Obj] | None = None

    def objects(self) -> list[Obj]:
        if self._objects is None:
            self._objects = [decode(r) for r in self.raw]
        return self._objects


# --- revisions and the change log -------------------------------------------------------------


def current_revision() -> int:
    """The latest committed revision (what a list reports as its resourceVersion)."""
    return sql.current_revision()


def compacted_revision() -> int:
    """The oldest revision a watch can resume from; older ones are Gone."""
    row = Compaction.objects.filter(pk=1).values_list("revision", flat=True).first()
    return int(row or 0)


def _next_revision() -> int:
    # The row lock taken here is held until commit: writers queue behind it, so revisions
    # commit in increasing order and "changes after N" is a complete answer for watchers.
    return sql.next_revision()


def _return_revision() -> None:
    """Give back the number ``_next_revision`` just took, after a lost compare-and-swap.

    The counter's lock is still held (until commit), so nobody took a number since: the
    counter stays contiguous without a savepoint to roll back to.
    """
    sql.return_revision()


def _after_commit(kind: Kind, obj: Obj) -> None:
    from clusterapi import controllers
    from clusterapi.core import watch
    from clusterapi.rbac import authorizer
    from clusterapi.store import snapshots

    rbac = kind.group == "rbac.authorization.k8s.io"

    def committed() -> None:
        watch.notify()
        snapshots.changed(kind)
        if rbac:
            authorizer.invalidate()
        controllers.wake(kind, obj)

    # Stale now, for reads later in this transaction (and in tests, whose transactions never
    # commit), and again at commit, for threads that re-read meanwhile. One callback per
    # write, registered on the connection the statements used (finding it through Django's
    # ``connections`` again cost a sixth of a scheduler bind).
    snapshots.changed(kind)
    sql.on_commit(committed)


def _record(
    kind: Kind, obj: Obj, change: str, revision: int, previous: str = "", data: str = ""
) -> str:
    data = data or encode(obj)
    meta = obj["metadata"]
    sql.insert_change(
        revision,
        kind.group,
        kind.plural,
        meta.get("namespace", ""),
        meta["name"],
        change,
        data,
        previous,
    )
    _after_commit(kind, obj)
    return data


# --- reads ------------------------------------------------------------------------------------


def _row(kind: Kind, namespace: str, name: str) -> sql.Row | None:
    return sql.select_row(kind.group, kind.plural, namespace if kind.namespaced else "", name)


def get_raw(kind: Kind, namespace: str, name: str) -> str:
    """The stored JSON of one object; NotFound when absent."""
    data = sql.select_data(kind.group, kind.plural, namespace if kind.namespaced else "", name)
    if data is None:
        raise errors.not_found(kind, name)
    return data


def get(kind: Kind, namespace: str, name: str) -> Obj:
    """One object; NotFound when absent."""
    return decode(get_raw(kind, namespace, name))


def _encode_continue(revision: int, namespace: str, name: str) -> str:
    token = orjson.dumps({"v": 1, "rv": revision, "start": [namespace, name]})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        namespace, name = data["start"]
        return int(data["rv"]), str(namespace), str(name)
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.bad_request(f"invalid continue token: {exc}") from exc


# Plain listings (a kind, or one namespace of it) read once per ``shared_lists`` block.
_SHARED_LISTS: contextvars.ContextVar[dict[tuple[str, str, str | None], ListResult] | None] = (
    contextvars.ContextVar("berth_shared_lists", default=None)
)


@contextlib.contextmanager
def shared_lists() -> Iterator[None]:
    """Within the block, a plain listing of a kind or of one of its namespaces (no filter, no
    page) is read from the database once and shared.

    For the controllers' change dispatcher: mapping a batch of 500 pod changes asked the
    store 500 times which ReplicaSets and budgets the namespace holds. Every change of the
    batch was committed before the block starts, so the first read sees them all; a listing
    can only be newer than the changes it is matched against, never older. Callers must not
    modify what they get (the objects are shared).
    """
    token = _SHARED_LISTS.set({})
    try:
        yield
    finally:
        _SHARED_LISTS.reset(token)


def list_objects(
    kind: Kind,
    namespace: str | None = None,
    *,
    match: Callable[[Obj], bool] | None = None,
    name: str | None = None,
    limit: int = 0,
    continue_token: str = "",
    table_rows: bool = False,
) -> ListResult:
    """Objects of a kind, in (namespace, name) order, optionally one namespace and a page.

    ``match`` filters decoded objects (label and field selectors); ``name`` is the fast path
    of a ``metadata.name=`` field selector. Pages continue with the returned token; a token
    whose revision has been compacted away is 410 Gone, as upstream. ``table_rows`` also
    reads the Table row kept with each object (``ListResult.table_rows``).
    """
    shared = _SHARED_LISTS.get()
    plain = match is None and name is None and not (limit or continue_token or table_rows)
    if shared is not None and plain:
        key = (kind.group, kind.plural, namespace if namespace and kind.namespaced else None)
        if key not in shared:
            unshared = _SHARED_LISTS.set(None)
            try:
                shared[key] = list_objects(kind, namespace)
            finally:
                _SHARED_LISTS.reset(unshared)
        return shared[key]
    revision = current_revision()
    scope = namespace if namespace and kind.namespaced else None
    after: tuple[str, str] | None = None
    if continue_token:
        token_rv, start_ns, start_name = _decode_continue(continue_token)
        if token_rv < compacted_revision():
            raise errors.gone(
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter."
            )
        revision = token_rv
        after = (start_ns, start_name)
    # Without a filter one extra row tells whether another page follows; with a filter an
    # unknown number of rows will be skipped, so all are streamed.
    rows = sql.select_list(
        kind.group,
        kind.plural,
        namespace=scope,
        name=name,
        after=after,
        limit=limit + 1 if limit and match is None else 0,
        table_rows=table_rows,
    )
    raw: list[str] = []
    objects: list[Obj] = []
    last: tuple[str, str] | None = None
    more = False
    kept: list[str] | None = [] if table_rows else None
    for row_ns, row_name, data, table_row in rows:
        if match is not None:
            obj = decode(data)
            if not match(obj):
                continue
            objects.append(obj)
        if limit and len(raw) >= limit:
            more = True
            break
        raw.append(data)
        if kept is not None:
            kept.append(table_row)
        last = (row_ns, row_name)
    result = ListResult(raw=raw, resource_version=revision, table_rows=kept)
    if match is not None:
        result._objects = objects[: len(raw)]
    if more and last is not None:
        result.continue_token = _encode_continue(revision, *last)
        if match is None:
            result.remaining = sql.count_after(kind.group, kind.plural, scope, last)
    return result


# --- strategy helpers -------------------------------------------------------------------------


def _generate_name(prefix: str) -> str:
    # Upstream draws these from a non-cryptographic generator too (utilrand.String): a
    # suffix only has to be unlikely to collide, and a taken one answers AlreadyExists.
    return prefix + "".join(random.choices(_NAME_ALPHABET, k=5))  # noqa: S311


def _spec_part(kind: Kind, obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in kind.non_spec_fields}


def _comparable(obj: Obj) -> Obj:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def _check_namespace(kind: Kind, namespace: str, name: str) -> None:
    if not kind.namespaced:
        return
    data = sql.select_data("", "namespaces", "", namespace)
    if data is None:
        raise errors.namespace_not_found(namespace)
    if (decode(data).get("metadata") or {}).get("deletionTimestamp"):
        # Upstream's NamespaceLifecycle wording, with the NamespaceTerminating cause that
        # controllers test for (HasStatusCause) to stop retrying creates in a dying namespace.
        raise ApiError(
            403,
            "Forbidden",
            f'{kind.qualified_plural} "{name}" is forbidden: unable to create new content in '
            f"namespace {namespace} because it is being terminated",
            name=name,
            kind=kind.plural,
            group=kind.group,
            causes=[
                errors.Cause(
                    "NamespaceTerminating",
                    f"namespace {namespace} is being terminated",
                    "metadata.namespace",
                )
            ],
        )


def _metadata(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    return meta


def _identify(kind: Kind, obj: Obj) -> None:
    """Check the body names this kind (or nothing), then stamp apiVersion and kind."""
    if not isinstance(obj, dict):
        raise errors.bad_request(f"the body of the request must be a {kind.kind} object")
    body_kind = obj.get("kind")
    body_version = obj.get("apiVersion")
    if (body_kind and body_kind != kind.kind) or (
        body_version and body_version != kind.api_version
    ):
        raise errors.bad_request(
            f"the API version in the data ({body_version}) does not match the expected API "
            f"version ({kind.api_version})"
            if body_version and body_version != kind.api_version
            else f"{body_kind} in version {kind.version!r} cannot be handled as a {kind.kind}: "
            f"the kind in the data ({body_kind}) does not match the expected kind ({kind.kind})"
        )
    obj["apiVersion"] = kind.api_version
    obj["kind"] = kind.kind


def _fix_namespace(kind: Kind, meta: Obj, namespace: str) -> None:
    if kind.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and namespace and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = namespace or body_ns or ""
        if not meta["namespace"]:
            raise errors.bad_request("namespace is required for a namespaced resource")
    else:
        meta.pop("namespace", None)


# --- writes -----------------------------------------------------------------------------------


@dataclass
class PreparedCreate:
    """A create checked and built but not yet written (``prepare_create``)."""

    kind: Kind
    obj: Obj
    namespace: str
    name: str
    warnings: list[str]


def prepare_create(
    kind: Kind,
    obj: Obj,
    *,
    namespace: str = "",
    field_validation: str = "Strict",
    field_manager: str = "",
    manage_fields: bool = True,
    user: Any = None,
) -> PreparedCreate:
    """Everything a create does before it writes: identity, defaulting, admission, field
    ownership, the namespace check. Raises what ``create`` would raise for the object."""
    _identify(kind, obj)
    meta = _metadata(obj)
    _fix_namespace(kind, meta, namespace)
    namespace = str(meta.get("namespace", ""))
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = _generate_name(str(meta["generateName"]))
    for key in (*_SERVER_FIELDS, "resourceVersion", "selfLink", "generation"):
        meta.pop(key, None)
    if manage_fields:
        # Recomputed below; with manage_fields=False the caller's entries are the record.
        meta.pop("managedFields", None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    meta["generation"] = 1
    if kind.has_status and not kind.keep_status_on_create:
        obj["status"] = {}
    kind.defaults(obj)
    warnings = admit(kind, obj, None, field_validation=field_validation, user=user)
    if manage_fields:
        _manage_fields(kind, None, obj, field_manager)
    if kind.namespaced:
        _check_namespace(kind, namespace, str(meta["name"]))
    return PreparedCreate(kind, obj, namespace, str(meta["name"]), warnings)


def create(
    kind: Kind,
    obj: Obj,
    *,
    namespace: str = "",
    dry_run: bool = False,
    field_validation: str = "Strict",
    field_manager: str = "",
    manage_fields: bool = True,
    user: Any = None,
) -> WriteResult:
    """Create an object. AlreadyExists on a taken name, NotFound for a missing namespace.

    ``manage_fields=False`` leaves metadata.managedFields as given (server-side apply has
    already recorded the applier's ownership). ``user`` is the requester for admission's
    user checks (RBAC escalation, node restriction); the control plane's loops pass none.
    """
    prepared = prepare_create(
        kind,
        obj,
        namespace=namespace,
        field_validation=field_validation,
        field_manager=field_manager,
        manage_fields=manage_fields,
        user=user,
    )
    if dry_run:
        if _row(kind, prepared.namespace, prepared.name) is not None:
            raise errors.already_exists(kind, prepared.name)
    else:
        # Inside the caller's transaction the create is part of it; otherwise it joins the
        # creates other threads of the process are making meanwhile (``group``).
        inserted = _insert_all([prepared])[0] if sql.in_transaction() else _creates.submit(prepared)
        if not inserted:
            raise errors.already_exists(kind, prepared.name)
    return WriteResult(prepared.obj, created=True, warnings=prepared.warnings)


def create_many(prepared: list[PreparedCreate]) -> list[WriteResult | ApiError]:
    """Write prepared creates in one transaction: one turn at the write lock and one commit
    for all (a control loop's batch of Events). Each gets its own answer, in order: the
    result, or AlreadyExists for a taken name, which leaves the others written."""
    inserted = _insert_all(prepared)
    return [
        WriteResult(one.obj, created=True, warnings=one.warnings)
        if ok
        else errors.already_exists(one.kind, one.name)
        for one, ok in zip(prepared, inserted, strict=True)
    ]


def _insert_all(prepared: list[PreparedCreate]) -> list[bool]:
    # No savepoint: nothing raises inside but a database error, which fails the caller's
    # transaction anyway.
    with transaction.atomic(savepoint=False):
        return [_insert(one) for one in prepared]


_creates: GroupCommit[PreparedCreate, bool] = GroupCommit(_insert_all)


def _insert(prepared: PreparedCreate) -> bool:
    """Inside the caller's transaction: the row and its change; False (nothing written,
    the revision given back) when the name is taken."""
    kind, obj = prepared.kind, prepared.obj
    meta = obj["metadata"]
    revision = _next_revision()
    meta["resourceVersion"] = str(revision)
    data = encode(obj)
    inserted = sql.insert_resource(
        kind.group,
        kind.plural,
        prepared.namespace,
        prepared.name,
        meta["uid"],
        revision,
        data,
        stored_rows.for_storage(kind.kind, obj),
    )
    if not inserted:
        _return_revision()
        del meta["resourceVersion"]
        return False
    _record(kind, obj, Change.ADDED, revision, data=data)
    return True


def _prepare_update(kind: Kind, old: Obj, new: Obj, subresource: str) -> Obj:
    """Merge what the caller may change into the stored object, per the kind's strategy."""
    _identify(kind, new)
    old_meta = old["metadata"]
    new_meta = _metadata(new)
    name = old_meta["name"]
    if new_meta.get("name") not in (None, "", name):
        raise errors.bad_request(
            f"the name of the object ({new_meta.get('name')}) does not match the name on the "
            f"URL ({name})"
        )
    _fix_namespace(kind, new_meta, old_meta.get("namespace", ""))
    if subresource == "finalize":
        # Namespaces' finalize subresource changes spec.finalizers and nothing else.
        result = clone(old)
        result.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers", [])
        return result
    if subresource == "status":
        # The status subresource changes status and nothing else.
        result = clone(old)
        result["status"] = new.get("status", {})
        return result
    new_meta["name"] = name
    for key in _SERVER_FIELDS:
        if key in old_meta:
            new_meta[key] = old_meta[key]
        else:
            new_meta.pop(key, None)
    new_meta.pop("selfLink", None)
    if "generateName" in old_meta and "generateName" not in new_meta:
        new_meta["generateName"] = old_meta["generateName"]
    if kind.has_status:
        # The main resource ignores status changes; they go through /status.
        if "status" in old:
            new["status"] = clone(old["status"])
        else:
            new.pop("status", None)
    return new


def _manage_fields(
    kind: Kind, old: Obj | None, new: Obj, manager: str, subresource: str = ""
) -> None:
    """Record field ownership in ``new``'s metadata.managedFields (an ``Update``)."""
    entries = managed_fields_after_update(
        old,
        new,
        manager or "unknown",
        api_version=kind.api_version,
        now=now(),
        subresource=subresource,
        definition=kind.definition,
    )
    # Into the same metadata dict: callers keep a reference to it and stamp resourceVersion
    # into it afterwards.
    if entries:
        new["metadata"]["managedFields"] = entries
    else:
        new["metadata"].pop("managedFields", None)


def _write_update(
    kind: Kind,
    row: sql.Row,
    old: Obj,
    new: Obj,
    *,
    subresource: str,
    dry_run: bool,
    field_validation: str,
    field_manager: str,
    precondition_rv: str | None,
    manage_fields: bool = True,
    user: Any = None,
) -> WriteResult:
    name = old["metadata"]["name"]
    if precondition_rv and precondition_rv != old["metadata"].get("resourceVersion"):
        raise errors.conflict(kind, name)
    body_uid = (new.get("metadata") or {}).get("uid")
    if body_uid and body_uid != old["metadata"]["uid"]:
        raise errors.conflict(
            kind,
            name,
            f"Precondition failed: UID in precondition: {body_uid}, UID in object meta: "
            f"{old['metadata']['uid']}",
        )
    new = _prepare_update(kind, old, new, subresource)
    meta = new["metadata"]
    meta["resourceVersion"] = old["metadata"]["resourceVersion"]
    meta["generation"] = old["metadata"].get("generation", 1)
    kind.defaults(new)
    warnings = admit(
        kind, new, old, field_validation=field_validation, user=user, subresource=subresource
    )
    if _comparable(new) == _comparable(old):
        return WriteResult(old, changed=False, warnings=warnings)
    if _spec_part(kind, new) != _spec_part(kind, old):
        meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
    if manage_fields:
        _manage_fields(kind, old, new, field_manager, subresource)
    finished = bool(meta.get("deletionTimestamp")) and not meta.get("finalizers")
    if finished and kind.finalized(new):
        if dry_run:
            return WriteResult(new, deleted=True, warnings=warnings)
        with transaction.atomic(savepoint=False):
            revision = _next_revision()
            written = sql.delete_resource(row)
            if written:
                meta["resourceVersion"] = str(revision)
                _record(kind, new, Change.DELETED, revision)
            else:
                _return_revision()
        if not written:
            raise errors.conflict(kind, name)
        return WriteResult(new, deleted=True, warnings=warnings)
    if dry_run:
        return WriteResult(new, warnings=warnings)
    # No savepoint: a lost compare-and-swap gives its revision back and is answered after the
    # block, so nothing raises inside it and nothing is left written. A writer that batches
    # many writes in one transaction (the scheduler's binds) would otherwise pay a savepoint
    # and its release per write.
    with transaction.atomic(savepoint=False):
        revision = _next_revision()
        meta["resourceVersion"] = str(revision)
        data = encode(new)
        written = sql.update_resource(row, revision, data, stored_rows.for_storage(kind.kind, new))
        if written:
            _record(kind, new, Change.MODIFIED, revision, previous=row.data, data=data)
        else:
            _return_revision()
    if not written:
        raise errors.conflict(kind, name)
    return WriteResult(new, warnings=warnings, previous=old)


def update(
    kind: Kind,
    namespace: str,
    name: str,
    new: Obj,
    *,
    subresource: str = "",
    dry_run: bool = False,
    field_validation: str = "Strict",
    field_manager: str = "",
    user: Any = None,
) -> WriteResult:
    """Replace an object (PUT). A resourceVersion in the body must match: else 409 Conflict."""
    row = _row(kind, namespace, name)
    if row is None:
        raise errors.not_found(kind, name)
    meta = new.get("metadata") if isinstance(new, dict) else None
    precondition = str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
    return _write_update(
        kind,
        row,
        decode(row.data),
        new,
        subresource=subresource,
        dry_run=dry_run,
        field_validation=field_validation,
        field_manager=field_manager,
        precondition_rv=precondition or None,
        user=user,
    )


def guaranteed_update(
    kind: Kind,
    namespace: str,
    name: str,
    mutate: Callable[[Obj], Obj],
    *,
    subresource: str = "",
    dry_run: bool = False,
    field_validation: str = "Strict",
    field_manager: str = "",
    create_missing: Callable[[], Obj] | None = None,
    manage_fields: bool = True,
    user: Any = None,
) -> WriteResult:
    """Read-modify-write (patches): ``mutate`` gets a copy of the current object.

    A lost compare-and-swap race is retried with the fresh object, unless the mutation itself
    carries a resourceVersion precondition that no longer holds (then 409, as upstream).
    ``create_missing`` builds the object to create when none exists (server-side apply).
    """
    for _attempt in range(_CONFLICT_RETRIES):
        row = _row(kind, namespace, name)
        if row is None:
            if create_missing is None:
                raise errors.not_found(kind, name)
            try:
                return create(
                    kind,
                    create_missing(),
                    namespace=namespace,
                    dry_run=dry_run,
                    field_validation=field_validation,
                    field_manager=field_manager,
                    manage_fields=manage_fields,
                    user=user,
                )
            except ApiError as exc:
                if exc.reason == "AlreadyExists":
                    continue
                raise
        old = decode(row.data)
        # A second decode is the cheaper deep copy (orjson against a Python walk).
        new = mutate(decode(row.data))
        requested_rv = str((new.get("metadata") or {}).get("resourceVersion") or "")
        precondition = (
            requested_rv
            if requested_rv and requested_rv != old["metadata"]["resourceVersion"]
            else None
        )
        try:
            return _write_update(
                kind,
                row,
                old,
                new,
                subresource=subresource,
                dry_run=dry_run,
                field_validation=field_validation,
                field_manager=field_manager,
                precondition_rv=precondition,
                manage_fields=manage_fields,
                user=user,
            )
        except ApiError as exc:
            if (
                exc.reason != "Conflict"
                or precondition is not None
                or "Precondition" in exc.message
            ):
                raise
    raise errors.conflict(kind, name)


def delete(
    kind: Kind,
    namespace: str,
    name: str,
    *,
    grace_period: int | None = None,
    propagation: str | None = None,
    precondition_uid: str | None = None,
    precondition_rv: str | None = None,
    dry_run: bool = False,
    user: Any = None,
) -> WriteResult:
    """Delete an object, or mark it for deletion while finalizers or a grace period remain."""
    for _attempt in range(_CONFLICT_RETRIES):
        row = _row(kind, namespace, name)
        if row is None:
            raise errors.not_found(kind, name)
        old = decode(row.data)
        meta = old["metadata"]
        if precondition_uid and precondition_uid != meta["uid"]:
            raise errors.conflict(
                kind,
                name,
                f"Precondition failed: UID in precondition: {precondition_uid}, UID in object "
                f"meta: {meta['uid']}",
            )
        if precondition_rv and precondition_rv != meta["resourceVersion"]:
            raise errors.conflict(
                kind,
                name,
                f"Precondition failed: ResourceVersion in precondition: {precondition_rv}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}",
            )
        admit_delete(kind, old, user)
        new = clone(old)
        new_meta = new["metadata"]
        finalizers = list(new_meta.get("finalizers") or [])
        if propagation == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if finalizers:
            new_meta["finalizers"] = finalizers
        force = grace_period == 0
        hold = kind.graceful(new, grace_period) and not force
        if finalizers or hold:
            if not new_meta.get("deletionTimestamp"):
                wait = int(new_meta.get("deletionGracePeriodSeconds") or 0) if hold else 0
                new_meta["deletionTimestamp"] = (
                    datetime.now(UTC) + timedelta(seconds=wait)
                ).strftime("%Y-%m-%dT%H:%M:%SZ")
                if not hold:
                    new_meta["deletionGracePeriodSeconds"] = 0
            if new == old:
                return WriteResult(old, changed=False)
            if dry_run:
                return WriteResult(new)
            try:
                with transaction.atomic():
                    revision = _next_revision()
                    new_meta["resourceVersion"] = str(revision)
                    if not sql.update_resource(
                        row, revision, encode(new), stored_rows.for_storage(kind.kind, new)
                    ):
                        raise errors.conflict(kind, name)
                    _record(kind, new, Change.MODIFIED, revision, previous=row.data)
            except ApiError as exc:
                if exc.reason == "Conflict":
                    continue
                raise
            return WriteResult(new)
        if dry_run:
            return WriteResult(old, deleted=True)
        try:
            with transaction.atomic():
                revision = _next_revision()
                if not sql.delete_resource(row):
                    raise errors.conflict(kind, name)
                new_meta["resourceVersion"] = str(revision)
                _record(kind, new, Change.DELETED, revision)
        except ApiError as exc:
            if exc.reason == "Conflict":
                continue
            raise
        return WriteResult(new, deleted=True)
    raise errors.conflict(kind, name)


def delete_collection(
    kind: Kind,
    namespace: str | None,
    *,
    match: Callable[[Obj], bool] | None = None,
    grace_period: int | None = None,
    propagation: str | None = None,
    dry_run: bool = False,
    user: Any = None,
) -> list[Obj]:
    """Delete every matching object (each its own write, each its own DELETED event)."""
    out: list[Obj] = []
    for obj in list_objects(kind, namespace, match=match).objects():
        meta = obj["metadata"]
        try:
            result = delete(
                kind,
                meta.get("namespace", ""),
                meta["name"],
                grace_period=grace_period,
                propagation=propagation,
                dry_run=dry_run,
                user=user,
            )
        except ApiError as exc:
            if exc.reason == "NotFound":
                continue
            raise
        out.append(result.obj)
    return out


def compact(retain: int) -> int:
    """Drop change-log rows older than the newest ``retain`` revisions; returns the new floor.

    Watches resuming from before the floor get 410 Gone, as after an etcd compaction.
    """
    floor = current_revision() - retain + 1
    if floor <= compacted_revision():
        return compacted_revision()
    with transaction.atomic():
        Compaction.objects.filter(pk=1).update(revision=floor)
        Change.objects.filter(revision__lt=floor).delete()
    return floor
