"""The store's statements on its two tables, written once as plain SQL.

Every API request runs one to four of these, and building the same statement through the ORM
each time (a QuerySet, its lookups, the compiler) cost more than executing it: about 80% of a
GET's server time and a quarter of a create's were spent in the ORM's SQL compiler. The
statements are fixed, so they are written here once, with ``%s`` parameters that Django's
cursor adapts for SQLite and PostgreSQL alike, and the callers in ``objects`` stay free of SQL.
Database errors still arrive as Django's; a taken key is an answer, not an error.

The tables and columns are the models' (``clusterapi.core.models``); the ORM remains the way
to reach them anywhere off the hot path.

The statements of a single write or read (the revision counter, one row, one change) run on
the driver's own cursor (``_statement``): Django's cursor wrapper costs more than SQLite
takes to run them (a new wrapper per statement, its async and thread checks, the DEBUG
lookup, the parameter-style rewrite), about a quarter of a scheduler bind. Database errors
are still turned into Django's, a broken transaction is still refused, and whenever queries
are being logged or wrapped (DEBUG, ``django_assert_num_queries``, ``execute_wrapper``) the
statements go through Django's cursor as before, so they stay visible to those tools.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

from clusterapi.core.models import Change, Resource

_RESOURCE = Resource._meta.db_table
_CHANGE = Change._meta.db_table
# "group" is a reserved word in SQL; both backends quote identifiers with double quotes.
_KEY = '"group" = %s AND resource = %s AND namespace = %s AND name = %s'

_SELECT_DATA = f"SELECT data FROM {_RESOURCE} WHERE {_KEY}"
_SELECT_ROW = f"SELECT id, revision, data FROM {_RESOURCE} WHERE {_KEY}"
# A taken key inserts nothing (and says so) instead of raising: on PostgreSQL an error
# would abort the whole transaction, and a batch of creates must outlive one taken name.
_INSERT_RESOURCE = (
    f'INSERT INTO {_RESOURCE} ("group", resource, namespace, name, uid, revision, data, '
    "table_row) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
_UPDATE_RESOURCE = (
    f"UPDATE {_RESOURCE} SET revision = %s, data = %s, table_row = %s "
    "WHERE id = %s AND revision = %s"
)
_TABLE_ROW, _NO_TABLE_ROW = "table_row", "''"
_DELETE_RESOURCE = f"DELETE FROM {_RESOURCE} WHERE id = %s AND revision = %s"
_SELECT_CHANGES = (
    f'SELECT revision, type, "group", resource, namespace, name, data, previous FROM {_CHANGE} '
    "WHERE revision > %s ORDER BY revision LIMIT %s"
)
_LATEST_CHANGE = f"SELECT MAX(revision) FROM {_CHANGE}"
_LATEST_CHANGE_OF = f'SELECT MAX(revision) FROM {_CHANGE} WHERE resource = %s AND "group" = %s'

_INSERT_CHANGE = (
    f'INSERT INTO {_CHANGE} (revision, "group", resource, namespace, name, type, data, previous) '
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# The counter's row lock, taken by the increment, is held until commit (see objects).
_NEXT_REVISION = "UPDATE core_revision SET value = value + 1 WHERE id = 1 RETURNING value"
_RETURN_REVISION = "UPDATE core_revision SET value = value - 1 WHERE id = 1"
_CURRENT_REVISION = "SELECT value FROM core_revision WHERE id = 1"

# Each statement in the driver's parameter style: "?" for sqlite3, "%s" for psycopg.
_NATIVE: dict[str, str] = {}


def _native(statement: str, vendor: str) -> str:
    found = _NATIVE.get(statement)
    if found is None:
        found = _NATIVE[statement] = (
            statement.replace("%s", "?") if vendor == "sqlite" else statement
        )
    return found


_thread = threading.local()


def _database() -> Any:
    """This thread's connection wrapper. Django keeps one per thread for good; finding it
    through ``connections`` (an asgiref ``Local``) costs more than a statement, so the
    thread remembers it."""
    db = getattr(_thread, "db", None)
    if db is None:
        db = _thread.db = connections[DEFAULT_DB_ALIAS]
    return db


def on_commit(callback: Callable[[], None]) -> None:
    """``transaction.on_commit`` on this thread's connection, without finding it again."""
    _database().on_commit(callback)


def in_transaction() -> bool:
    """Whether this thread's connection is inside a transaction (an ``atomic`` block)."""
    return bool(_database().in_atomic_block)


def others_waiting() -> bool:
    """Whether another writer waits for the transaction this thread holds open (the SQLite
    backend knows; PostgreSQL's row locks do not say, so there it is always False)."""
    check = getattr(_database(), "others_waiting", None)
    return bool(check()) if check is not None else False


@contextmanager
def _statement(statement: str, params: Sequence[Any] = ()) -> Iterator[Any]:
    """Run one statement on the driver's cursor and yield it (module docstring)."""
    db = _database()
    if db.force_debug_cursor or db.execute_wrappers or settings.DEBUG:
        with db.cursor() as cursor:
            cursor.execute(statement, params)
            yield cursor
        return
    if db.connection is None:
        db.ensure_connection()
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        cursor = db.connection.cursor()
        try:
            cursor.execute(_native(statement, db.vendor), params)
            yield cursor
        finally:
            cursor.close()


class Row(NamedTuple):
    """A stored object's row: its primary key, the revision it was written at, its JSON."""

    pk: int
    revision: int
    data: str


_SELECT_CHANGED = (
    "SELECT name, uid, revision, CASE WHEN revision > %s THEN data ELSE NULL END "
    f'FROM {_RESOURCE} WHERE "group" = %s AND resource = %s AND namespace = %s ORDER BY name'
)


def select_changed(
    group: str, resource: str, namespace: str, since: int
) -> list[tuple[str, str, int, str | None]]:
    """(name, uid, revision, data) of a namespace's objects of a kind, in name order, with
    the JSON only of those written after revision ``since`` (None for the others)."""
    with connection.cursor() as cursor:
        cursor.execute(_SELECT_CHANGED, (since, group, resource, namespace))
        return [
            (str(n), str(u), int(r), None if d is None else str(d))
            for n, u, r, d in cursor.fetchall()
        ]


def select_data(group: str, resource: str, namespace: str, name: str) -> str | None:
    """The JSON of one object, or None."""
    with _statement(_SELECT_DATA, (group, resource, namespace, name)) as cursor:
        found = cursor.fetchone()
    return None if found is None else str(found[0])


def select_row(group: str, resource: str, namespace: str, name: str) -> Row | None:
    """One object's row (for a compare-and-swap write), or None."""
    with _statement(_SELECT_ROW, (group, resource, namespace, name)) as cursor:
        found = cursor.fetchone()
    return None if found is None else Row(int(found[0]), int(found[1]), str(found[2]))


def insert_resource(
    group: str,
    resource: str,
    namespace: str,
    name: str,
    uid: str,
    revision: int,
    data: str,
    table_row: str,
) -> bool:
    """Add a row; False (nothing written) when the key is taken."""
    with _statement(
        _INSERT_RESOURCE, (group, resource, namespace, name, uid, revision, data, table_row)
    ) as cursor:
        return bool(cursor.rowcount)


def update_resource(row: Row, revision: int, data: str, table_row: str) -> bool:
    """Compare-and-swap: rewrite the row only if it is still at ``row.revision``."""
    with _statement(_UPDATE_RESOURCE, (revision, data, table_row, row.pk, row.revision)) as c:
        return bool(c.rowcount)


def delete_resource(row: Row) -> bool:
    """Compare-and-swap delete: only if the row is still at ``row.revision``."""
    with _statement(_DELETE_RESOURCE, (row.pk, row.revision)) as cursor:
        return bool(cursor.rowcount)


def insert_change(
    revision: int,
    group: str,
    resource: str,
    namespace: str,
    name: str,
    change_type: str,
    data: str,
    previous: str,
) -> None:
    """Append a change-log row."""
    with _statement(
        _INSERT_CHANGE, (revision, group, resource, namespace, name, change_type, data, previous)
    ):
        pass


def select_list(
    group: str,
    resource: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 0,
    table_rows: bool = False,
) -> Iterator[tuple[str, str, str, str]]:
    """(namespace, name, data, table_row) of a kind's objects in key order, maybe narrowed.

    ``after`` starts past a (namespace, name) key (a continue token); ``limit`` caps the rows;
    the table rows are read only when asked for ("" otherwise). Rows are fetched in batches,
    so a large kind is not held twice in memory.
    """
    where = ['"group" = %s', "resource = %s"]
    params: list[str] = [group, resource]
    if namespace is not None:
        where.append("namespace = %s")
        params.append(namespace)
    if name is not None:
        where.append("name = %s")
        params.append(name)
    if after is not None:
        where.append("(namespace > %s OR (namespace = %s AND name > %s))")
        params.extend((after[0], after[0], after[1]))
    statement = (
        f"SELECT namespace, name, data, {_TABLE_ROW if table_rows else _NO_TABLE_ROW} "
        f"FROM {_RESOURCE} WHERE {' AND '.join(where)} "
        "ORDER BY namespace, name"
    )
    if limit:
        statement += f" LIMIT {int(limit)}"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        while batch := cursor.fetchmany(2000):
            for row_ns, row_name, data, table_row in batch:
                yield str(row_ns), str(row_name), str(data), str(table_row)


def count_after(group: str, resource: str, namespace: str | None, after: tuple[str, str]) -> int:
    """How many objects of a kind (in a namespace) sort after a key: remainingItemCount."""
    statement = (
        f'SELECT COUNT(*) FROM {_RESOURCE} WHERE "group" = %s AND resource = %s'
        + (" AND namespace = %s" if namespace is not None else "")
        + " AND (namespace > %s OR (namespace = %s AND name > %s))"
    )
    params: list[str] = [group, resource]
    if namespace is not None:
        params.append(namespace)
    params.extend((after[0], after[0], after[1]))
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        found = cursor.fetchone()
    return int(found[0]) if found else 0


def select_changes(after: int, limit: int) -> list[tuple[int, str, str, str, str, str, str, str]]:
    """Change-log rows after a revision, oldest first: (revision, type, group, resource,
    namespace, name, data, previous)."""
    with connection.cursor() as cursor:
        cursor.execute(_SELECT_CHANGES, (after, limit))
        return [tuple(row) for row in cursor.fetchall()]


def latest_change() -> int:
    """The newest revision in the change log (0 when it is empty)."""
    with connection.cursor() as cursor:
        cursor.execute(_LATEST_CHANGE)
        found = cursor.fetchone()
    return int(found[0] or 0) if found else 0


def latest_change_of(group: str, resource: str) -> int:
    """The newest change-log revision of one kind (0 when none is kept)."""
    with connection.cursor() as cursor:
        cursor.execute(_LATEST_CHANGE_OF, (resource, group))
        found = cursor.fetchone()
    return int(found[0] or 0) if found else 0


def next_revision() -> int:
    """Take the next revision number (the counter stays locked until commit)."""
    with _statement(_NEXT_REVISION) as cursor:
        return int(cursor.fetchone()[0])


def return_revision() -> None:
    """Give back the number just taken (the lock is still held: nobody took one since)."""
    with _statement(_RETURN_REVISION):
        pass


def current_revision() -> int:
    """The latest committed revision (0 before the first write)."""
    with _statement(_CURRENT_REVISION) as cursor:
        row = cursor.fetchone()
    return int(row[0]) if row else 0
