"""The CronJob controller: schedules, time zones, concurrency, deadlines, history, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import cronjob as cronctl
from clusterapi.controllers import job as jobctl
from clusterapi.controllers import pods
from tests.clusterapi.controllers.conftest import NS, Clock, get, kind

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]
CRONJOB = kind("batch/v1", "CronJob")
JOB = kind("batch/v1", "Job")


@pytest.fixture
def cron_clock(clock: Clock) -> Clock:
    """The fake clock, started at a whole hour."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    clock.now = start
    return clock


def make_cronjob(name: str = "tick", schedule: str = "*/5 * * * *", **spec: Any) -> Obj:
    body: Obj = {
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox"}],
                        }
                    }
                },
            },
            **spec,
        },
    }
    store.create(CRONJOB, body, namespace=NS)
    # Anchor the schedule at the fake clock's start (creation time is the real clock's).
    anchor = pods.format_time(pods.utcnow())

    def anchored(obj: Obj) -> Obj:
        obj["status"]["lastScheduleTime"] = anchor
        return obj

    return store.guaranteed_update(CRONJOB, NS, name, anchored, subresource="status").obj


def jobs_of(name: str = "tick") -> list[Obj]:
    return sorted(
        (
            j
            for j in store.list_objects(JOB, NS).objects()
            if (pods.controller_ref(j) or {}).get("name") == name
        ),
        key=lambda j: j["metadata"]["name"],
    )


def finish_job(job: Obj, type_: str, clock: Clock) -> None:
    def mutate(obj: Obj) -> Obj:
        stamp = clock.stamp()
        cond = {"type": type_, "status": "True", "lastTransitionTime": stamp}
        obj["status"]["conditions"] = [cond]
        obj["status"]["startTime"] = stamp
        if type_ == "Complete":
            obj["status"]["completionTime"] = stamp
        return obj

    store.guaranteed_update(JOB, NS, job["metadata"]["name"], mutate, subresource="status")


def test_schedules_accept_macros_and_time_zones() -> None:
    expr, zone = cronctl.parse_schedule({"spec": {"schedule": "CRON_TZ=Europe/Paris 0 9 * * *"}})
    assert (expr, str(zone)) == ("0 9 * * *", "Europe/Paris")
    at = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    assert cronctl.next_after(expr, zone, at) == datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    hourly, utc = cronctl.parse_schedule({"spec": {"schedule": "@hourly"}})
    assert cronctl.next_after(hourly, utc, at) == datetime(2030, 1, 1, 1, 0, tzinfo=UTC)
    _, ny = cronctl.parse_schedule(
        {"spec": {"schedule": "0 9 * * *", "timeZone": "America/New_York"}}
    )
    assert str(ny) == "America/New_York"
    with pytest.raises(cronctl.ScheduleError):
        cronctl.parse_schedule({"spec": {"schedule": "not a schedule"}})


def test_it_fires_a_job_named_after_the_scheduled_minute(ns: str, cron_clock: Clock) -> None:
    make_cronjob()
    delay = cronctl.reconcile(NS, "tick")
    assert jobs_of() == []
    assert delay == pytest.approx(300.1)
    cron_clock.advance(300)
    delay = cronctl.reconcile(NS, "tick")
    (job,) = jobs_of()
    minutes = int(cron_clock.now.timestamp() // 60)
    assert job["metadata"]["name"] == f"tick-{minutes}"
    assert job["metadata"]["labels"] == {"team": "a"}
    assert cronctl.SCHEDULED_TIMESTAMP_ANNOTATION in job["metadata"]["annotations"]
    status = get(CRONJOB, "tick")["status"]
    assert status["lastScheduleTime"] == cron_clock.stamp()
    assert [r["name"] for r in status["active"]] == [job["metadata"]["name"]]
    assert delay == pytest.approx(300.1)
    # Running again at the same time creates nothing more.
    cronctl.reconcile(NS, "tick")
    assert len(jobs_of()) == 1


def test_a_completed_job_leaves_active_and_sets_last_successful_time(
    ns: str, cron_clock: Clock
) -> None:
    make_cronjob()
    cron_clock.advance(300)
    cronctl.reconcile(NS, "tick")
    (job,) = jobs_of()
    cron_clock.advance(10)
    finish_job(job, "Complete", cron_clock)
    cronctl.reconcile(NS, "tick")
    status = get(CRONJOB, "tick")["status"]
    assert "active" not in status
    assert status["lastSuccessfulTime"] == cron_clock.stamp()


def test_forbid_skips_while_a_job_runs_and_replace_deletes_it(ns: str, cron_clock: Clock) -> None:
    make_cronjob("forbid", concurrencyPolicy="Forbid")
    make_cronjob("replace", concurrencyPolicy="Replace")
    cron_clock.advance(300)
    cronctl.reconcile(NS, "forbid")
    cronctl.reconcile(NS, "replace")
    cron_clock.advance(300)
    cronctl.reconcile(NS, "forbid")
    cronctl.reconcile(NS, "replace")
    assert len(jobs_of("forbid")) == 1
    replaced = jobs_of("replace")
    assert len(replaced) == 1
    assert replaced[0]["metadata"]["name"].endswith(str(int(cron_clock.now.timestamp() // 60)))


def test_suspend_stops_new_jobs(ns: str, cron_clock: Clock) -> None:
    make_cronjob(suspend=True)
    cron_clock.advance(600)
    assert cronctl.reconcile(NS, "tick") is None
    assert jobs_of() == []


def test_a_schedule_missed_past_the_starting_deadline_is_skipped(
    ns: str, cron_clock: Clock
) -> None:
    make_cronjob(schedule="0 * * * *", startingDeadlineSeconds=60)
    cron_clock.advance(3600 + 120)
    cronctl.reconcile(NS, "tick")
    assert jobs_of() == []


def test_more_than_a_hundred_missed_times_warn_and_run_the_latest(
    ns: str, cron_clock: Clock
) -> None:
    make_cronjob(schedule="* * * * *")
    cron_clock.advance(200 * 60 + 30)
    cronctl.reconcile(NS, "tick")
    (job,) = jobs_of()
    latest = cron_clock.now.replace(second=0)
    assert job["metadata"]["name"] == f"tick-{int(latest.timestamp() // 60)}"
    reasons = {e["reason"] for e in store.list_objects(kind("v1", "Event"), NS).objects()}
    assert "TooManyMissedTimes" in reasons


def test_history_limits_delete_the_oldest_finished_jobs(ns: str, cron_clock: Clock) -> None:
    make_cronjob(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    for index in range(3):
        cron_clock.advance(300)
        cronctl.reconcile(NS, "tick")
        newest = jobs_of()[-1]
        finish_job(newest, "Complete" if index < 2 else "Failed", cron_clock)
    cronctl.reconcile(NS, "tick")
    left = jobs_of()
    kept = [j for j in left if not j["metadata"].get("deletionTimestamp")]
    assert len(kept) == 2
    assert {jobctl.has_condition(j["status"], "Failed") for j in kept} == {True, False}
