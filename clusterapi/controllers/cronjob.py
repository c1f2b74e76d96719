"""The CronJob controller: creates Jobs on a cron schedule (upstream ``cronjob_controllerv2``).

Flow of one reconcile:

1. Read the CronJob and the Jobs it controls. Reconcile ``status.active``: drop Jobs that are
   gone or finished (a Complete one sets ``lastSuccessfulTime``), add running ones missing.
2. Delete finished Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit``
   (oldest first, Background propagation).
3. Unless deleted or suspended, find the most recent schedule time missed since
   ``lastScheduleTime`` (or creation), no earlier than ``now - startingDeadlineSeconds``;
   more than 100 missed times → a ``TooManyMissedTimes`` warning (the latest still runs).
   Too late for the deadline → ``MissSchedule``. ``Forbid`` skips while a Job is active,
   ``Replace`` deletes the active Jobs first. The Job is named
   ``<cronjob>-<scheduled time in minutes since the epoch>``, so a repeat is AlreadyExists.
4. Return the delay until the next schedule time (plus 100 ms, as upstream).

Schedules use croniter (five fields, ``@hourly``-style macros) in ``spec.timeZone`` or a
``CRON_TZ=``/``TZ=`` prefix, UTC otherwise. The clock is ``pods.utcnow`` (tests move it).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from clusterapi import store
from clusterapi.controllers import events, pods
from clusterapi.controllers import job as jobs
from clusterapi.controllers.base import Controller, Obj, owners, write_status
from clusterapi.resources import by_kind
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100
NEXT_SCHEDULE_SLACK = 0.1


def cronjob_kind() -> Kind:
    kind = by_kind("batch/v1", "CronJob")
    assert kind is not None
    return kind


class ScheduleError(ValueError):
    """An unparseable schedule or unknown time zone."""


def parse_schedule(cronjob: Obj) -> tuple[str, ZoneInfo]:
    """The cron expression and its time zone (``spec.timeZone`` or a ``CRON_TZ=`` prefix)."""
    spec = cronjob.get("spec") or {}
    expr = str(spec.get("schedule") or "").strip()
    zone_name = str(spec.get("timeZone") or "")
    for prefix in ("CRON_TZ=", "TZ="):
        if expr.startswith(prefix):
            zone_part, _, expr = expr.partition(" ")
            zone_name = zone_part[len(prefix) :]
            expr = expr.strip()
    try:
        zone = ZoneInfo(zone_name) if zone_name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {zone_name}") from exc
    if not croniter.is_valid(expr) or len(expr.split()) not in (1, 5):
        raise ScheduleError(f"unparseable schedule {expr!r}")
    return expr, zone


def next_after(expr: str, zone: ZoneInfo, moment: datetime) -> datetime:
    """The first schedule time strictly after ``moment`` (UTC)."""
    base = moment.astimezone(zone)
    nxt: datetime = croniter(expr, base).get_next(datetime)
    return nxt.astimezone(UTC)


def missed_times(
    expr: str, zone: ZoneInfo, earliest: datetime, now: datetime
) -> tuple[datetime | None, int]:
    """The most recent schedule time in (earliest, now] and how many there were.

    Counting stops past ``MAX_MISSED`` (the count is then a lower bound, enough for the
    warning); the most recent time is then found backwards from ``now``.
    """
    count, latest = 0, None
    moment = next_after(expr, zone, earliest)
    while moment <= now:
        count += 1
        latest = moment
        if count > MAX_MISSED:
            probe = now.astimezone(zone) + timedelta(microseconds=1)
            previous: datetime = croniter(expr, probe).get_prev(datetime)
            return previous.astimezone(UTC), count
        moment = next_after(expr, zone, moment)
    return latest, count


def job_name(cronjob: Obj, scheduled: datetime) -> str:
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp() // 60)}"


def _reference(job: Obj) -> Obj:
    meta = job["metadata"]
    return {
        "kind": "Job",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": "batch/v1",
        "resourceVersion": meta.get("resourceVersion"),
    }


def _failed(job: Obj) -> bool:
    return jobs.has_condition(job.get("status") or {}, "Failed")


def _delete_job(job: Obj) -> None:
    meta = job["metadata"]
    try:
        store.delete(
            jobs.job_kind(),
            meta["namespace"],
            meta["name"],
            precondition_uid=meta["uid"],
            propagation="Background",
        )
    except ApiError as exc:
        if exc.reason not in ("NotFound", "Conflict"):
            raise


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one CronJob; returns the delay until its next schedule time."""
    try:
        cronjob = store.get(cronjob_kind(), namespace, name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise
    now = pods.utcnow()
    spec = cronjob.get("spec") or {}
    old = cronjob.get("status") or {}
    status: Obj = copy.deepcopy(old)
    owned = [
        j
        for j in store.list_objects(jobs.job_kind(), namespace).objects()
        if pods.is_controlled_by(j, cronjob)
    ]
    by_uid = {j["metadata"]["uid"]: j for j in owned}
    active_refs: list[Obj] = []
    for ref in status.get("active") or ():
        found = by_uid.get(str(ref.get("uid")))
        if found is not None and not jobs.is_finished(found):
            active_refs.append(ref)
    for j in owned:
        if not jobs.is_finished(j) and all(
            r.get("uid") != j["metadata"]["uid"] for r in active_refs
        ):
            active_refs.append(_reference(j))
    for j in owned:
        was_active = any(r.get("uid") == j["metadata"]["uid"] for r in status.get("active") or ())
        st = j.get("status") or {}
        if jobs.has_condition(st, "Complete") and st.get("completionTime"):
            last = pods.parse_time(status.get("lastSuccessfulTime"))
            done = pods.parse_time(st["completionTime"])
            if done is not None and (last is None or done > last):
                status["lastSuccessfulTime"] = st["completionTime"]
            if was_active:
                events.record(
                    cronjob,
                    events.NORMAL,
                    "SawCompletedJob",
                    f"Saw completed job: {j['metadata']['name']}, condition: Complete",
                    component=COMPONENT,
                )
    status["active"] = active_refs
    _cleanup_history(spec, owned)

    delay: float | None = None
    if not cronjob["metadata"].get("deletionTimestamp"):
        delay = _schedule(cronjob, spec, status, active_refs, now)
    if not status.get("active"):
        status.pop("active", None)
    _write_status(cronjob, status)
    return delay


def _cleanup_history(spec: Obj, owned: list[Obj]) -> None:
    finished = sorted(
        (j for j in owned if jobs.is_finished(j)),
        key=lambda j: (
            str((j.get("status") or {}).get("startTime") or j["metadata"]["creationTimestamp"]),
            j["metadata"]["name"],
        ),
    )
    for failed, key in ((False, "successfulJobsHistoryLimit"), (True, "failedJobsHistoryLimit")):
        limit = spec.get(key)
        if limit is None:
            continue
        group = [j for j in finished if _failed(j) == failed]
        for j in group[: max(0, len(group) - int(limit))]:
            _delete_job(j)


def _schedule(
    cronjob: Obj, spec: Obj, status: Obj, active_refs: list[Obj], now: datetime
) -> float | None:
    try:
        expr, zone = parse_schedule(cronjob)
    except ScheduleError as exc:
        events.record(cronjob, events.WARNING, "UnparseableSchedule", str(exc), component=COMPONENT)
        return None
    next_delay = (next_after(expr, zone, now) - now).total_seconds() + NEXT_SCHEDULE_SLACK
    if spec.get("suspend"):
        return None
    earliest = pods.parse_time(status.get("lastScheduleTime")) or pods.parse_time(
        cronjob["metadata"].get("creationTimestamp")
    )
    assert earliest is not None
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=int(deadline)))
    scheduled, count = missed_times(expr, zone, earliest, now)
    if count > MAX_MISSED:
        events.record(
            cronjob,
            events.WARNING,
            "TooManyMissedTimes",
            f"too many missed start times: {count}. Set or decrease .spec.startingDeadlineSeconds"
            " or check clock skew",
            component=COMPONENT,
        )
    if scheduled is None:
        return next_delay
    if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
        events.record(
            cronjob,
            events.WARNING,
            "MissSchedule",
            f"Missed scheduled time to start a job: {pods.format_time(scheduled)}",
            component=COMPONENT,
        )
        return next_delay
    name = job_name(cronjob, scheduled)
    if any(r.get("name") == name for r in active_refs):
        return next_delay
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active_refs:
        events.record(
            cronjob,
            events.NORMAL,
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
            component=COMPONENT,
        )
        return next_delay
    if policy == "Replace":
        for ref in list(active_refs):
            try:
                current = store.get(jobs.job_kind(), cronjob["metadata"]["namespace"], ref["name"])
            except ApiError:
                current = None
            if current is not None:
                _delete_job(current)
                events.record(
                    cronjob,
                    events.NORMAL,
                    "SuccessfulDelete",
                    f"Deleted job {ref['name']}",
                    component=COMPONENT,
                )
        active_refs.clear()
    created = _create_job(cronjob, spec, name, scheduled.astimezone(zone))
    if created is not None:
        active_refs.append(_reference(created))
    status["active"] = active_refs
    status["lastScheduleTime"] = pods.format_time(scheduled)
    return next_delay


def _create_job(cronjob: Obj, spec: Obj, name: str, scheduled: datetime) -> Obj | None:
    template = copy.deepcopy(spec.get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    meta: Obj = {"name": name}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    meta["annotations"] = {
        **(tmeta.get("annotations") or {}),
        SCHEDULED_TIMESTAMP_ANNOTATION: scheduled.isoformat(),
    }
    meta["ownerReferences"] = [pods.owner_reference(cronjob)]
    body: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": template.get("spec") or {},
    }
    namespace = cronjob["metadata"]["namespace"]
    try:
        job = store.create(jobs.job_kind(), body, namespace=namespace, field_manager=COMPONENT).obj
    except ApiError as exc:
        if exc.reason == "AlreadyExists":
            existing = store.get(jobs.job_kind(), namespace, name)
            return existing if pods.is_controlled_by(existing, cronjob) else None
        events.record(
            cronjob,
            events.WARNING,
            "FailedCreate",
            f"Error creating job: {exc}",
            component=COMPONENT,
        )
        return None
    events.record(
        cronjob, events.NORMAL, "SuccessfulCreate", f"Created job {name}", component=COMPONENT
    )
    return job


def _write_status(cronjob: Obj, status: Obj) -> None:
    write_status(cronjob_kind(), cronjob, status, field_manager=COMPONENT)


CONTROLLER = Controller(
    name="cronjob",
    kind="CronJob",
    reconcile=reconcile,
    watches={"Job": owners("CronJob")},
)
