"""Housekeeping of the samples: celery beat prunes those past their retention."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db import close_old_connections, connection
from django.utils import timezone

from clusterapi.metrics import config
from clusterapi.metrics.models import Sample


def prune() -> int:
    """Delete samples older than ``BERTH_METRICS_RETENTION_SECONDS``; returns how many."""
    cutoff = timezone.now() - timedelta(seconds=config.retention_seconds())
    deleted, _ = Sample.objects.filter(time__lt=cutoff).delete()
    return deleted


def _refresh_connection() -> None:
    # As the audit task: a worker drops a stale connection between tasks, but a task run
    # inline (tests) keeps the caller's transaction.
    if not connection.in_atomic_block:
        close_old_connections()


@shared_task(name="berth.metrics.prune", ignore_result=True)
def prune_task() -> int:
    """The beat entry ``metrics-prune``: delete samples past their retention."""
    _refresh_connection()
    try:
        return prune()
    finally:
        _refresh_connection()
