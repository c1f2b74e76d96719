"""The audit log's housekeeping: celery beat prunes events past their retention."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections, connection

from clusterapi.audit import log


def _refresh_connection() -> None:
    # A worker thread drops a stale or broken connection between tasks; inside a transaction
    # (a task run inline, as in tests) the connection belongs to the caller and stays.
    if not connection.in_atomic_block:
        close_old_connections()


@shared_task(name="berth.audit.prune", ignore_result=True)
def prune_task() -> int:
    """Delete audit events older than ``BERTH_AUDIT_RETENTION_DAYS``; returns how many."""
    _refresh_connection()
    try:
        return log.prune()
    finally:
        _refresh_connection()
