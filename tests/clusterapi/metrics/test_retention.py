"""Samples past BERTH_METRICS_RETENTION_SECONDS are pruned by the beat task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from clusterapi.metrics import tasks
from clusterapi.metrics.models import Sample

pytestmark = pytest.mark.django_db


def sample(age: float) -> Sample:
    return Sample(
        kind=Sample.NODE,
        name="a",
        node="a",
        time=timezone.now() - timedelta(seconds=age),
        window=15.0,
        cpu=1,
        memory=1,
    )


def test_prune_keeps_an_hour_by_default_and_deletes_older() -> None:
    Sample.objects.bulk_create([sample(a) for a in (10, 3590, 3700, 7200)])
    assert tasks.prune_task() == 2
    assert sorted(
        round((timezone.now() - s.time).total_seconds()) for s in Sample.objects.all()
    ) == [
        10,
        3590,
    ]


@override_settings(BERTH_METRICS_RETENTION_SECONDS=60)
def test_retention_is_configurable() -> None:
    Sample.objects.bulk_create([sample(a) for a in (10, 120)])
    assert tasks.prune() == 1
    assert Sample.objects.count() == 1


def test_the_beat_schedule_runs_the_named_task() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["metrics-prune"]
    assert entry["task"] == "berth.metrics.prune" == tasks.prune_task.name
