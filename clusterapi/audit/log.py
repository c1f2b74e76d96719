"""Recording and pruning audit events (see the package docstring)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import queue
import threading
from datetime import timedelta
from typing import Any

import jsonpointer
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Field
from django.utils import timezone

from clusterapi.audit.models import AuditEvent

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
        _batch_writer().put(params)
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


class BatchWriter:
    """Writes the events of many requests in one transaction, from a thread of its own.

    Upstream's ``--audit-log-mode=batch``: a request hands its event over and is answered at
    once. The thread takes everything queued (up to ``max_batch`` events) and writes it in
    one transaction, so under load events go in batches and one turn at the store's write
    lock serves many requests; when idle, an event is written as soon as it comes. A full
    buffer makes requests wait for room rather than lose events. Events still queued when
    the process is killed outright are lost (a normal exit writes them: ``atexit``).
    ``flush`` waits until everything handed over before it is written: the readers of the
    log in this process (the API's ``/audit/v1/events``, the admin site) call it first.
    """

    def __init__(self, buffer: int = 10_000, max_batch: int = 500) -> None:
        self.queue: queue.Queue[list[Any] | threading.Event] = queue.Queue(maxsize=buffer)
        self.max_batch = max_batch
        self.thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self.thread.start()

    def put(self, params: list[Any]) -> None:
        self.queue.put(params)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event handed over so far is committed; False on timeout."""
        written = threading.Event()
        self.queue.put(written)
        return written.wait(timeout)

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < self.max_batch:
                    batch.append(self.queue.get_nowait())
            rows = [item for item in batch if isinstance(item, list)]
            if rows:
                self._write(rows)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()

    def _write(self, rows: list[list[Any]]) -> None:
        close_old_connections()
        try:
            _insert(rows)
        except Exception:
            # As in blocking mode a failed write never fails the request; the log says so.
            logger.exception("could not write %d audit events", len(rows))
            connection.close()


_writer: BatchWriter | None = None
_writer_pid = 0
_writer_guard = threading.Lock()


def _batch_writer() -> BatchWriter:
    global _writer, _writer_pid
    # A forked child has its parent's writer object but not its thread: it starts its own.
    if _writer is None or _writer_pid != os.getpid():
        with _writer_guard:
            if _writer is None or _writer_pid != os.getpid():
                _writer = BatchWriter()
                _writer_pid = os.getpid()
    return _writer


def flush(timeout: float = 10.0) -> bool:
    """Write out the events this process has queued (batch mode); True once all are in."""
    writer = _writer
    if writer is None or _writer_pid != os.getpid():
        return True
    return writer.flush(timeout)


atexit.register(flush)


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
