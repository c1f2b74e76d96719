"""The Job controller: runs pods until ``completions`` of them succeed, or the Job fails.

Flow of one reconcile (upstream ``pkg/controller/job``, NonIndexed completion mode):

1. Take the key's lock, read the Job and claim the pods its selector matches (the Job kind
   generates the selector and the ``job-name``/``controller-uid`` template labels).
2. **Count finished pods exactly once**, as upstream's tracking finalizer does: every pod
   is created with the ``batch.kubernetes.io/job-tracking`` finalizer; a finished pod
   (Succeeded, Failed, or deleted before it succeeded) still carrying it is first recorded
   by uid in ``status.uncountedTerminatedPods``, then its finalizer is removed, then the uid
   moves into ``status.succeeded``/``status.failed``. A crash between the steps repeats a
   step; it never counts a pod twice, and deleting a finished pod loses no count.
3. **Decide the outcome**: ``failed > backoffLimit`` → ``FailureTarget`` (reason
   ``BackoffLimitExceeded``); running longer than ``activeDeadlineSeconds`` → ``FailureTarget``
   (``DeadlineExceeded``); enough successes → ``SuccessCriteriaMet`` (``CompletionsReached``).
   The remaining active pods are deleted; once none is left running the terminal condition
   (``Failed`` or ``Complete`` with ``completionTime``) follows, as 1.37 does.
4. **Manage pods** while undecided: suspended → delete the active pods (``Suspended``
   condition); otherwise keep ``min(parallelism, completions - succeeded)`` pods active,
   creating after a failure only once the back-off has passed.
5. A finished Job with ``ttlSecondsAfterFinished`` is deleted (Background propagation, so the
   garbage collector takes its pods) once the TTL has run out (upstream runs this in the
   separate TTL-after-finished controller).

Simplifications (documented gaps): the back-off after failures is ``BACKOFF_BASE_SECONDS *
2**(failed-1)`` capped at ``BACKOFF_MAX_SECONDS``, measured from the newest failed pod's finish
time (upstream keeps the per-Job back-off record in memory); Indexed completion mode,
``podFailurePolicy``, ``successPolicy``, ``backoffLimitPerIndex`` and ``managedBy`` are not
implemented.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta

from clusterapi import store
from clusterapi.controllers import events, pods
from clusterapi.controllers.base import Controller, Obj, owners, write_status
from clusterapi.core.selectors import SelectorError, from_label_selector
from clusterapi.resources import by_kind
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

COMPONENT = "job-controller"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 360.0
# How soon a Job waiting for its pods to terminate looks again.
TERMINATION_POLL_SECONDS = 1.0

BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


def job_kind() -> Kind:
    kind = by_kind("batch/v1", "Job")
    assert kind is not None
    return kind


# --- conditions -------------------------------------------------------------------------------


def condition(status: Obj, type_: str) -> Obj | None:
    for cond in status.get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def has_condition(status: Obj, type_: str) -> bool:
    cond = condition(status, type_)
    return cond is not None and cond.get("status") == "True"


def is_finished(job: Obj) -> bool:
    """The Job has a true ``Complete`` or ``Failed`` condition (``IsJobFinished``)."""
    status = job.get("status") or {}
    return has_condition(status, "Complete") or has_condition(status, "Failed")


def _set_condition(
    status: Obj, type_: str, reason: str, message: str, now: datetime, value: str = "True"
) -> None:
    stamp = pods.format_time(now)
    conditions = [c for c in status.get("conditions") or () if isinstance(c, dict)]
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = stamp
            cond.update(status=value, reason=reason, message=message, lastProbeTime=stamp)
            break
    else:
        conditions.append(
            {
                "type": type_,
                "status": value,
                "lastProbeTime": stamp,
                "lastTransitionTime": stamp,
                "reason": reason,
                "message": message,
            }
        )
    status["conditions"] = conditions


# --- pods -------------------------------------------------------------------------------------


def _is_failed(pod: Obj) -> bool:
    """Counted as a failure (``isPodFailed``): Failed, or deleted before it succeeded."""
    phase = pods.phase(pod)
    if phase == "Failed":
        return True
    return bool(pod["metadata"].get("deletionTimestamp")) and phase != "Succeeded"


def _finished_at(pod: Obj) -> datetime | None:
    latest: datetime | None = None
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or ():
        terminated = ((cs or {}).get("state") or {}).get("terminated") or {}
        moment = pods.parse_time(terminated.get("finishedAt"))
        if moment is not None and (latest is None or moment > latest):
            latest = moment
    if latest is None:
        for cond in status.get("conditions") or ():
            moment = pods.parse_time((cond or {}).get("lastTransitionTime"))
            if moment is not None and (latest is None or moment > latest):
                latest = moment
    return latest or pods.parse_time(pod["metadata"].get("creationTimestamp"))


def backoff_delay(failed: int) -> float:
    """Upstream's exponential back-off before a replacement after ``failed`` failures."""
    if failed <= 0:
        return 0.0
    return min(BACKOFF_BASE_SECONDS * 2 ** (failed - 1), BACKOFF_MAX_SECONDS)


def _remove_finalizer(pod: Obj) -> None:
    meta = pod["metadata"]
    uid = meta["uid"]

    def mutate(current: Obj) -> Obj:
        if current["metadata"]["uid"] != uid:
            raise ApiError(404, "NotFound", "replaced")
        remaining = [
            f for f in current["metadata"].get("finalizers") or () if f != TRACKING_FINALIZER
        ]
        if remaining:
            current["metadata"]["finalizers"] = remaining
        else:
            current["metadata"].pop("finalizers", None)
        return current

    try:
        store.guaranteed_update(
            pods.pod_kind(), meta["namespace"], meta["name"], mutate, field_manager=COMPONENT
        )
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise


def _has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or ())


def _delete_pod(pod: Obj) -> None:
    meta = pod["metadata"]
    try:
        store.delete(pods.pod_kind(), meta["namespace"], meta["name"], precondition_uid=meta["uid"])
    except ApiError as exc:
        if exc.reason not in ("NotFound", "Conflict"):
            raise


# --- reconcile --------------------------------------------------------------------------------


def _release_orphans(namespace: str, name: str) -> None:
    """The Job is gone: let its pods go too (drop our tracking finalizer)."""
    for pod in store.list_objects(pods.pod_kind(), namespace).objects():
        ref = pods.controller_ref(pod) or {}
        if ref.get("kind") == "Job" and ref.get("name") == name and _has_finalizer(pod):
            _remove_finalizer(pod)


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one Job (see the module docstring); returns when to look again."""
    kind = job_kind()
    try:
        job = store.get(kind, namespace, name)
    except ApiError as exc:
        if exc.reason == "NotFound":
            _release_orphans(namespace, name)
            return None
        raise
    now = pods.utcnow()
    spec = job.get("spec") or {}
    try:
        selector = from_label_selector(spec.get("selector"))
    except SelectorError:
        return None
    pod_kind = pods.pod_kind()
    candidates = store.list_objects(pod_kind, namespace).objects()
    owned = pods.claim(job, candidates, pod_kind, selector, field_manager=COMPONENT)
    if job["metadata"].get("deletionTimestamp") or is_finished(job):
        for pod in owned:
            if _has_finalizer(pod):
                _remove_finalizer(pod)
        if job["metadata"].get("deletionTimestamp"):
            return None
        return _expire(job, now)

    old = job.get("status") or {}
    status: Obj = copy.deepcopy(old)
    replace_failed_only = spec.get("podReplacementPolicy") == "Failed"

    def failed(pod: Obj) -> bool:
        if replace_failed_only:
            return pods.phase(pod) == "Failed"
        return _is_failed(pod)

    # Step 2: count finished pods exactly once.
    uncounted = status.get("uncountedTerminatedPods") or {}
    unc_succeeded: list[str] = list(uncounted.get("succeeded") or ())
    unc_failed: list[str] = list(uncounted.get("failed") or ())
    newly: list[Obj] = []
    for pod in owned:
        uid = pod["metadata"]["uid"]
        if not _has_finalizer(pod) or uid in unc_succeeded or uid in unc_failed:
            continue
        if pods.phase(pod) == "Succeeded":
            unc_succeeded.append(uid)
            newly.append(pod)
        elif failed(pod):
            unc_failed.append(uid)
            newly.append(pod)
    if newly:
        status["uncountedTerminatedPods"] = {"succeeded": unc_succeeded, "failed": unc_failed}
        job = _write_status(job, status) or job
        status = copy.deepcopy(job.get("status") or {})
    for pod in owned:
        uid = pod["metadata"]["uid"]
        if _has_finalizer(pod) and (uid in unc_succeeded or uid in unc_failed):
            _remove_finalizer(pod)
    status["succeeded"] = int(status.get("succeeded") or 0) + len(unc_succeeded)
    status["failed"] = int(status.get("failed") or 0) + len(unc_failed)
    status["uncountedTerminatedPods"] = {}
    counted = set(unc_succeeded) | set(unc_failed)

    active = [p for p in owned if pods.is_active(p) and p["metadata"]["uid"] not in counted]
    terminating = [p for p in owned if pods.is_terminating(p) and not failed(p)]
    succeeded, failed_count = int(status["succeeded"]), int(status["failed"])
    suspended = bool(spec.get("suspend"))
    if not suspended and not status.get("startTime"):
        status["startTime"] = pods.format_time(now)
    start = pods.parse_time(status.get("startTime"))

    # Step 3: decide.
    completions = spec.get("completions")
    raw_parallelism, raw_backoff = spec.get("parallelism"), spec.get("backoffLimit")
    parallelism = 1 if raw_parallelism is None else int(raw_parallelism)
    backoff_limit = 6 if raw_backoff is None else int(raw_backoff)
    failure: tuple[str, str] | None = None
    target = condition(status, "FailureTarget")
    if target is not None and target.get("status") == "True":
        failure = (str(target.get("reason")), str(target.get("message")))
    elif failed_count > backoff_limit:
        failure = BACKOFF_LIMIT_EXCEEDED
    elif (
        spec.get("activeDeadlineSeconds") is not None
        and start is not None
        and not suspended
        and now - start >= timedelta(seconds=int(spec["activeDeadlineSeconds"]))
    ):
        failure = DEADLINE_EXCEEDED
    complete = failure is None and (
        has_condition(status, "SuccessCriteriaMet")
        or (succeeded >= int(completions) if completions is not None else False)
        or (completions is None and succeeded > 0 and not active)
    )
    retry: float | None = None
    if failure is not None or complete:
        if failure is not None and not has_condition(status, "FailureTarget"):
            _set_condition(status, "FailureTarget", *failure, now)
            events.record(job, events.WARNING, failure[0], failure[1], component=COMPONENT)
        if complete and not has_condition(status, "SuccessCriteriaMet"):
            _set_condition(status, "SuccessCriteriaMet", *COMPLETIONS_REACHED, now)
        for pod in active:
            _delete_pod(pod)
        still_running = [
            p for p in owned if pods.phase(p) not in pods.TERMINAL_PHASES and _has_finalizer(p)
        ]
        still_running = [p for p in still_running if p["metadata"]["uid"] not in counted]
        if still_running:
            retry = TERMINATION_POLL_SECONDS
        elif failure is not None:
            _set_condition(status, "Failed", *failure, now)
        else:
            _set_condition(status, "Complete", *COMPLETIONS_REACHED, now)
            status["completionTime"] = pods.format_time(now)
            events.record(job, events.NORMAL, "Completed", "Job completed", component=COMPONENT)
        active = []
    elif suspended:
        for pod in active:
            _delete_pod(pod)
        if not has_condition(status, "Suspended"):
            _set_condition(status, "Suspended", "JobSuspended", "Job suspended", now)
            events.record(job, events.NORMAL, "Suspended", "Job suspended", component=COMPONENT)
        active = []
    else:
        if has_condition(status, "Suspended"):
            _set_condition(status, "Suspended", "JobResumed", "Job resumed", now, value="False")
            events.record(job, events.NORMAL, "Resumed", "Job resumed", component=COMPONENT)
        # Step 4: keep the wanted number of pods active.
        if completions is None:
            # After a success no new pod starts; the running ones finish on their own.
            wanted = parallelism if succeeded == 0 else len(active)
        else:
            wanted = max(0, min(parallelism, int(completions) - succeeded))
        wanted_now = wanted
        if replace_failed_only:
            wanted_now = max(0, wanted - len(terminating))
        if len(active) < wanted_now:
            wait = _backoff_left(owned, failed, failed_count, now)
            if wait > 0:
                retry = wait
            else:
                active.extend(_create(job, wanted_now - len(active)))
        elif len(active) > wanted:
            victims = pods.rank_for_deletion(active, (), now)[: len(active) - wanted]
            for pod in victims:
                _delete_pod(pod)
            gone = {p["metadata"]["uid"] for p in victims}
            active = [p for p in active if p["metadata"]["uid"] not in gone]
        if spec.get("activeDeadlineSeconds") is not None and start is not None:
            left = (
                start + timedelta(seconds=int(spec["activeDeadlineSeconds"])) - now
            ).total_seconds()
            retry = left if retry is None else min(retry, left)

    status["active"] = len(active)
    status["ready"] = sum(1 for p in active if pods.is_ready(p))
    status["terminating"] = len(terminating)
    for key in ("active", "succeeded", "failed"):
        if not status[key]:
            del status[key]
    written = _write_status(job, status)
    if written is not None and is_finished(written):
        return _expire(written, now)
    return retry


def _backoff_left(
    owned: list[Obj], failed: Callable[[Obj], bool], failed_count: int, now: datetime
) -> float:
    if failed_count <= 0:
        return 0.0
    last = None
    for pod in owned:
        if failed(pod):
            moment = _finished_at(pod)
            if moment is not None and (last is None or moment > last):
                last = moment
    if last is None:
        return 0.0
    return (last + timedelta(seconds=backoff_delay(failed_count)) - now).total_seconds()


def _create(job: Obj, count: int) -> list[Obj]:
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    meta = template.setdefault("metadata", {})
    meta["finalizers"] = [*(meta.get("finalizers") or ()), TRACKING_FINALIZER]
    created: list[Obj] = []
    for _ in range(count):
        try:
            pod = pods.create_pod(template, job, field_manager=COMPONENT)
        except ApiError as exc:
            if not pods.namespace_terminating(exc):
                events.record(
                    job,
                    events.WARNING,
                    "FailedCreate",
                    f"Error creating: {exc}",
                    component=COMPONENT,
                )
            break
        created.append(pod)
        events.record(
            job,
            events.NORMAL,
            "SuccessfulCreate",
            f"Created pod: {pod['metadata']['name']}",
            component=COMPONENT,
        )
    return created


def _expire(job: Obj, now: datetime) -> float | None:
    """Delete a finished Job whose ``ttlSecondsAfterFinished`` has run out."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None:
        return None
    status = job.get("status") or {}
    finished = pods.parse_time(status.get("completionTime"))
    if finished is None:
        cond = condition(status, "Failed") or condition(status, "Complete") or {}
        finished = pods.parse_time(cond.get("lastTransitionTime"))
    if finished is None:
        return None
    left = (finished + timedelta(seconds=int(ttl)) - now).total_seconds()
    if left > 0:
        return left
    meta = job["metadata"]
    try:
        store.delete(
            job_kind(),
            meta["namespace"],
            meta["name"],
            precondition_uid=meta["uid"],
            propagation="Background",
        )
    except ApiError as exc:
        if exc.reason not in ("NotFound", "Conflict"):
            raise
    return None


def _write_status(job: Obj, status: Obj) -> Obj | None:
    """Write ``status`` through the status subresource; the Job as stored (None if gone)."""
    return write_status(job_kind(), job, status, field_manager=COMPONENT)


CONTROLLER = Controller(
    name="job",
    kind="Job",
    reconcile=reconcile,
    watches={"Pod": owners("Job")},
)
