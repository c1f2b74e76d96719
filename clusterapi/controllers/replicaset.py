"""The ReplicaSet controller: keeps ``spec.replicas`` pods matching the selector.

Flow of one reconcile (upstream ``pkg/controller/replicaset``; the ReplicationController
controller runs the same ``ReplicaManager`` with its own kind and selector form):

1. Take the key's lock (one reconcile per ReplicaSet at a time), read the ReplicaSet and
   every pod of its namespace from the store.
2. **Claim** the active pods (not finished, not being deleted): keep those we control that
   still match, release those that no longer match, adopt matching orphans.
3. **Manage replicas** (unless the ReplicaSet is being deleted): too few → create the missing
   pods in slow-start batches of 1, 2, 4, ... (a failing create costs one call, not N; at most
   ``BURST_REPLICAS`` per reconcile); too many → delete the surplus, ranked as upstream's
   ``ActivePodsWithRanks`` (``pods.rank_for_deletion``).
4. **Status** through the status subresource: replicas, fullyLabeledReplicas, readyReplicas,
   availableReplicas (ready for ``minReadySeconds``), terminatingReplicas, observedGeneration
   and the ReplicaFailure condition while creates or deletes fail.
5. Ask to run again: at once when more than a burst was missing, when the next ready pod
   becomes available (``minReadySeconds``), or after a back-off when a create failed.

The status counts the pods as they are after this reconcile's own creates and deletes, so a
Deployment reading it sees the effect without waiting for another round. Pods are woken into
their owner through ``watches``: a pod's change wakes the ReplicaSet controlling it, and an
orphan's change wakes every ReplicaSet of its namespace whose selector matches it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from clusterapi import store
from clusterapi.controllers import events, pods
from clusterapi.controllers.base import Controller, Key, Obj, write_status
from clusterapi.core.selectors import LabelSelector, SelectorError, from_label_selector
from clusterapi.resources import by_kind
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

logger = logging.getLogger(__name__)

# At most this many pods are created or deleted by one reconcile (upstream's BurstReplicas).
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1
# Upstream's event spam filter lets about 25 events per object through in a burst; creating
# 1,000 pods records that many "Created pod" events, not 1,000.
EVENT_BURST = 25
# How soon a reconcile whose creates or deletes failed tries again.
FAILURE_RETRY_SECONDS = 5.0


def slow_start_batch(
    count: int, initial: int, attempt: Callable[[], None]
) -> tuple[int, ApiError | None]:
    """Call ``attempt`` up to ``count`` times in doubling batches (``initial``, 2x, 4x, ...).

    Every call of a batch is made (upstream runs a batch concurrently); after a batch with a
    failure the remaining batches are skipped. Returns the number of successful calls and the
    first failure (an ``ApiError``), or None.
    """
    remaining, successes = count, 0
    batch = min(remaining, initial)
    while batch > 0:
        failures: list[ApiError] = []
        for _ in range(batch):
            try:
                attempt()
            except ApiError as exc:
                failures.append(exc)
        successes += batch - len(failures)
        if failures:
            return successes, failures[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


@dataclass
class _Round:
    """What one reconcile did to the owner's pods (for status and events)."""

    pods: list[Obj]
    terminating: int = 0
    failure: tuple[str, str] | None = None  # (reason, message) of the ReplicaFailure condition
    more: bool = False  # work beyond this reconcile's burst remains
    events_left: int = EVENT_BURST
    deleted_uids: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ReplicaManager:
    """The replicated-pod loop, parametrised by the kind it runs for.

    ``selector_of`` turns the owner into its pod selector (a LabelSelector object for
    ReplicaSets, a plain label map for ReplicationControllers); ``report_terminating`` is
    whether the kind's status has ``terminatingReplicas`` (apps/v1 only).
    """

    controller_name: str
    api_version: str
    kind_name: str
    component: str
    selector_of: Callable[[Obj], LabelSelector]
    report_terminating: bool

    @property
    def kind(self) -> Kind:
        kind = by_kind(self.api_version, self.kind_name)
        assert kind is not None
        return kind

    # --- entry points ---------------------------------------------------------------------

    def pod_owners(self, pod: Obj) -> Iterable[Key]:
        """The keys a pod's change wakes: its controller, or for an orphan every match."""
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace", ""))
        ref = pods.controller_ref(pod)
        if ref is not None:
            if ref.get("kind") == self.kind_name:
                yield (namespace, str(ref.get("name", "")))
            return
        if meta.get("deletionTimestamp") or not namespace:
            return
        # An orphan may be adopted by any owner whose selector matches it (upstream
        # getPodReplicaSets); orphans are rare, so listing the namespace's owners is cheap.
        for owner in store.list_objects(self.kind, namespace).objects():
            try:
                if self.selector_of(owner).matches(meta.get("labels")):
                    yield (namespace, owner["metadata"]["name"])
            except SelectorError:
                continue

    # --- one reconcile --------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Converge one object; returns when to look again (None when converged)."""
        kind = self.kind
        try:
            owner = store.get(kind, namespace, name)
        except ApiError as exc:
            if exc.reason == "NotFound":
                return None
            raise
        try:
            selector = self.selector_of(owner)
        except SelectorError as exc:
            # Validation keeps bad selectors out; one that slipped through is not retried.
            logger.warning("%s %s/%s: invalid selector: %s", self.kind_name, namespace, name, exc)
            return None
        pod_kind = pods.pod_kind()
        # Shared with later reconciles (decoded once per revision): read, never modified.
        all_pods = store.list_shared(pod_kind, namespace)
        active = [p for p in all_pods if pods.is_active(p)]
        owned = pods.claim(owner, active, pod_kind, selector, field_manager=self.component)
        work = _Round(pods=owned)
        if not owner["metadata"].get("deletionTimestamp"):
            self._manage(owner, all_pods, work)
        work.terminating += sum(
            1
            for p in all_pods
            if pods.is_terminating(p)
            and pods.is_controlled_by(p, owner)
            and selector.matches(p["metadata"].get("labels"))
        )
        now = pods.utcnow()
        spec = owner.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        self._write_status(owner, self._status(owner, work, now))
        if work.failure is not None:
            return FAILURE_RETRY_SECONDS
        if work.more:
            return 0.0
        return pods.available_in(work.pods, min_ready, now)

    def _manage(self, owner: Obj, all_pods: list[Obj], work: _Round) -> None:
        """Create or delete pods so that ``spec.replicas`` of them remain (``manageReplicas``)."""
        desired = int((owner.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(work.pods) - desired
        if diff < 0:
            wanted = -diff
            work.more = wanted > BURST_REPLICAS
            self._create(owner, min(wanted, BURST_REPLICAS), work)
        elif diff > 0:
            work.more = diff > BURST_REPLICAS
            self._delete(owner, all_pods, min(diff, BURST_REPLICAS), work)

    def _create(self, owner: Obj, count: int, work: _Round) -> None:
        template = (owner.get("spec") or {}).get("template") or {}

        def create_one() -> None:
            try:
                pod = pods.create_pod(template, owner, field_manager=self.component)
            except ApiError as exc:
                if pods.namespace_terminating(exc):
                    # Every create would fail the same way; the namespace is going anyway.
                    return
                self._event(owner, work, events.WARNING, "FailedCreate", f"Error creating: {exc}")
                raise
            work.pods.append(pod)
            self._event(
                owner,
                work,
                events.NORMAL,
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
            )

        _created, failure = slow_start_batch(count, SLOW_START_INITIAL_BATCH, create_one)
        if failure is not None:
            work.failure = ("FailedCreate", str(failure))

    def _delete(self, owner: Obj, all_pods: list[Obj], count: int, work: _Round) -> None:
        victims = work.pods
        if count < len(work.pods):
            related = self._related_pods(owner, all_pods)
            victims = pods.rank_for_deletion(work.pods, related, pods.utcnow())
        victims = victims[:count]
        pod_kind = pods.pod_kind()
        first_error: ApiError | None = None
        for pod in victims:
            meta = pod["metadata"]
            try:
                result = store.delete(
                    pod_kind, meta["namespace"], meta["name"], precondition_uid=meta["uid"]
                )
            except ApiError as exc:
                if exc.reason == "NotFound":
                    work.deleted_uids.add(meta["uid"])
                    continue
                self._event(owner, work, events.WARNING, "FailedDelete", f"Error deleting: {exc}")
                first_error = first_error or exc
                continue
            work.deleted_uids.add(meta["uid"])
            if not result.deleted and pods.is_terminating(result.obj):
                # A bound pod stays through its grace period: a terminating replica now.
                work.terminating += 1
            self._event(
                owner, work, events.NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}"
            )
        work.pods = [p for p in work.pods if p["metadata"]["uid"] not in work.deleted_uids]
        if first_error is not None:
            work.failure = ("FailedDelete", str(first_error))

    def _related_pods(self, owner: Obj, all_pods: list[Obj]) -> list[Obj]:
        """Pods of every sibling owned by the same controller (``getIndirectlyRelatedPods``).

        Without a controller there are no siblings and every pod ranks alike by node.
        """
        ref = pods.controller_ref(owner)
        if ref is None:
            return []
        namespace = owner["metadata"]["namespace"]
        siblings = [
            s
            for s in store.list_objects(self.kind, namespace).objects()
            if (pods.controller_ref(s) or {}).get("uid") == ref.get("uid")
        ]
        related: dict[str, Obj] = {}
        for sibling in siblings:
            try:
                selector = self.selector_of(sibling)
            except SelectorError:
                continue
            for pod in all_pods:
                if selector.matches(pod["metadata"].get("labels")):
                    related.setdefault(pod["metadata"]["uid"], pod)
        return list(related.values())

    def _event(self, owner: Obj, work: _Round, type_: str, reason: str, message: str) -> None:
        if work.events_left <= 0:
            return
        work.events_left -= 1
        events.record(owner, type_, reason, message, component=self.component)

    # --- status ---------------------------------------------------------------------------

    def _status(self, owner: Obj, work: _Round, now: datetime) -> Obj:
        """The owner's new status (``calculateStatus``), in upstream's field order."""
        spec = owner.get("spec") or {}
        old = owner.get("status") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        template_selector = LabelSelector.from_set(template_labels, validate=False)
        fully_labeled = ready = available = 0
        for pod in work.pods:
            if template_selector.matches(pod["metadata"].get("labels")):
                fully_labeled += 1
            if pods.is_ready(pod):
                ready += 1
                if pods.is_available(pod, min_ready, now):
                    available += 1
        conditions = [c for c in old.get("conditions") or () if isinstance(c, dict)]
        failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
        if work.failure is not None and failure is None:
            reason, message = work.failure
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "lastTransitionTime": pods.format_time(now),
                    "reason": reason,
                    "message": message,
                }
            )
        elif work.failure is None and failure is not None:
            conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
        status: Obj = {"replicas": len(work.pods)}
        # Zero counts are omitted, as Go's omitempty serialises them.
        for key, value in (
            ("fullyLabeledReplicas", fully_labeled),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ):
            if value:
                status[key] = value
        if self.report_terminating:
            status["terminatingReplicas"] = work.terminating
        generation = int(owner["metadata"].get("generation") or 0)
        if generation:
            status["observedGeneration"] = generation
        if conditions:
            status["conditions"] = conditions
        return status

    def _write_status(self, owner: Obj, status: Obj) -> None:
        write_status(self.kind, owner, status, field_manager=self.component)


def _selector(obj: Obj) -> LabelSelector:
    return from_label_selector((obj.get("spec") or {}).get("selector"))


MANAGER = ReplicaManager(
    controller_name="replicaset",
    api_version="apps/v1",
    kind_name="ReplicaSet",
    component="replicaset-controller",
    selector_of=_selector,
    report_terminating=True,
)


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one ReplicaSet (see the module docstring)."""
    return MANAGER.reconcile(namespace, name)


CONTROLLER = Controller(
    name="replicaset",
    kind="ReplicaSet",
    reconcile=reconcile,
    watches={"Pod": MANAGER.pod_owners},
)
