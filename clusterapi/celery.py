"""The Celery application that runs Berth's control loops (scheduler and controllers).

Broker: Redis when ``REDIS_URL`` is set (production, integration tests); otherwise kombu's
filesystem transport in the data directory, a broker that needs no server, so ``manage.py up``
works on a fresh machine. Tasks are idempotent reconciles: ``acks_late`` with
``task_reject_on_worker_lost`` redelivers a task whose worker died, results are not stored,
and every task has an explicit name. ``CELERY_TASK_ALWAYS_EAGER`` is never used for the loops:
unit tests call ``reconcile`` directly.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready

from clusterapi import broker  # noqa: F401 - registers the berthfs:// transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterapi.settings")

app = Celery("berth")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fix-up closes every database connection before and after each task unless
# told to reuse them: a new connection (and its PRAGMAs, or a PostgreSQL log-in) per task was a
# third of the worker's time on a burst of writes. Connections are kept, checked by the tasks'
# own close_old_connections() (CONN_MAX_AGE, health checks), and recycled every few thousand.
app.conf.CELERY_DB_REUSE_MAX = 2000
app.autodiscover_tasks(["clusterapi.controllers", "clusterapi.audit"])


@worker_ready.connect
def _tune_memory(**_: object) -> None:
    # After start-up (tasks imported, schemas loaded): see clusterapi.core.gctune.
    from clusterapi.core import gctune

    gctune.tune()
