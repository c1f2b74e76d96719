"""The audit log's housekeeping: celery beat prunes events past their retention."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from clusterapi.audit import log


@shared_task(name="berth.audit.prune", ignore_result=True)
def prune_task() -> int:
    """Delete audit events older than ``BERTH_AUDIT_RETENTION_DAYS``; returns how many."""
    close_old_connections()
    try:
        return log.prune()
    finally:
        close_old_connections()
