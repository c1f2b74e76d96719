"""Recording and pruning audit events (see the package docstring)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from datetime import timedelta
from typing import Any

import jsonpointer
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from clusterapi.audit.models import AuditEvent
from clusterapi.core.behind import WriteBehind

logger = logging.getLogger(__name__)

MUTATING_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_IGNORED_METADATA = ("resourceVersion", "managedFields", "generation")


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    for key in _IGNORED_METADATA:
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """A JSON patch turning ``old`` into ``new`` (bookkeeping metadata ignored)."""
    if old is None or new is None:
        return None
    patch: list[dict[str, Any]] = []
    _diff_into(patch, "", _clean(old), _clean(new))
    return patch


def _diff_into(patch: list[dict[str, Any]], pointer: str, old: Any, new: Any) -> None:
    """Append the operations turning ``old`` into ``new`` (at ``pointer``) to ``patch``.

    Equal subtrees are skipped with one ``==``; objects are compared key by key, lists of
    one length item by item, and a list that only grew or shrank at its end gets ``add`` or
    ``remove`` operations for the tail; any other list change replaces the list. This is
    coarser than jsonpatch's ``make_patch`` (which looks for moved items) and far cheaper:
    that walked every unchanged field and serialised each scalar and list item to compare
    them, a third of the cost of an agent's pod status report.
    """
    if old == new:  # (== takes 1 for True; the schemas keep such fields typed)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            if key not in new:
                patch.append({"op": "remove", "path": f"{pointer}/{jsonpointer.escape(key)}"})
        for key, value in new.items():
            path = f"{pointer}/{jsonpointer.escape(key)}"
            if key in old:
                _diff_into(patch, path, old[key], value)
            else:
                patch.append({"op": "add", "path": path, "value": value})
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            _diff_into(patch, f"{pointer}/{index}", before, after)
    elif isinstance(old, list) and isinstance(new, list) and new[: len(old)] == old:
        patch.extend(
            {"op": "add", "path": f"{pointer}/{index}", "value": new[index]}
            for index in range(len(old), len(new))
        )
    elif isinstance(old, list) and isinstance(new, list) and old[: len(new)] == new:
        patch.extend(
            {"op": "remove", "path": f"{pointer}/{index}"}
            for index in reversed(range(len(new), len(old)))
        )
    else:
        patch.append({"op": "replace", "path": pointer, "value": new})


# Every column but the id, in the model's order: ``record`` gives each a value, and one
# INSERT statement serves a whole batch.
_FIELDS = tuple(f.name for f in AuditEvent._meta.concrete_fields if not f.primary_key)


def should_record(verb: str, code: int) -> bool:
    return verb in MUTATING_VERBS or code in (401, 403)


def record(
    *,
    user: str,
    groups: list[str] | tuple[str, ...],
    verb: str,
    request_uri: str,
    code: int,
    api_group: str = "",
    resource: str = "",
    subresource: str = "",
    namespace: str = "",
    name: str = "",
    impersonator: str = "",
    change: list[dict[str, Any]] | None = None,
    source_ip: str = "",
    user_agent: str = "",
) -> None:
    values = {
        "timestamp": timezone.now(),
        "user": user,
        "groups": list(groups),
        "impersonator": impersonator,
        "verb": verb,
        "api_group": api_group,
        "resource": resource,
        "subresource": subresource,
        "namespace": namespace,
        "name": name,
        "request_uri": request_uri[:4000],
        "code": code,
        "diff": change,
        "source_ip": source_ip,
        "user_agent": user_agent[:255],
    }
    # One fixed INSERT with each value prepared by its model field (JSON, timestamps), as
    # the ORM would; building the statement through a model save was a quarter of the
    # server time of an API create (every create is audited).
    params = [_field(name).get_db_prep_save(values[name], connection) for name in _FIELDS]
    if settings.BERTH_AUDIT_MODE == "batch":
        _writer.put(params)
    else:
        _insert([params])


def _insert(rows: list[list[Any]]) -> None:
    # On SQLite an autocommit INSERT would meet the API's writers in SQLite's sleeping busy
    # handler; in a transaction it queues on the process's writer lock (clusterapi.store.sqlite).
    # A batch is one transaction on any database: one commit for all its rows.
    single = connection.vendor != "sqlite" and len(rows) == 1
    queued = contextlib.nullcontext() if single else transaction.atomic()
    with queued, connection.cursor() as cursor:
        cursor.executemany(_insert_statement(_FIELDS), rows)


def _write_batch(rows: list[list[Any]]) -> None:
    # As in blocking mode a failed write never fails the request; the writer logs it.
    _insert(rows)  # looked up at each call (the tests replace it)


# Upstream's ``--audit-log-mode=batch``: a request hands its event over and is answered at
# once; the events of many requests are written in one transaction (``core.behind``).
_writer: WriteBehind[list[Any]] = WriteBehind("audit-writer", _write_batch, what="audit events")


def flush(timeout: float = 10.0) -> bool:
    """Write out the events this process has queued (batch mode); True once all are in.
    The readers of the log in this process (the API's ``/audit/v1/events``, the admin site)
    call it first."""
    return _writer.flush(timeout)


def _field(name: str) -> Field[Any, Any]:
    field = AuditEvent._meta.get_field(name)
    assert isinstance(field, Field)
    return field


@functools.cache
def _insert_statement(fields: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(_field(f).column)) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608


def retention() -> timedelta:
    return timedelta(days=float(os.environ.get("BERTH_AUDIT_RETENTION_DAYS", "30")))


def prune() -> int:
    """Delete events older than the retention; returns how many went."""
    cutoff = timezone.now() - retention()
    return int(AuditEvent.objects.filter(timestamp__lt=cutoff).delete()[0])
