"""One StatefulSet reconcile's pod work: create, repair, scale down, roll out, count.

``_Sync`` holds the set, its revisions and its pods split into replicas (by ordinal, ``None``
where a pod is missing) and condemned pods (out of range, highest ordinal first), and runs
steps 4 to 6 of the package's flow. ``OrderedReady`` waiting and write failures end the round
through ``Stop``; the status is computed from whatever the round achieved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from clusterapi import store
from clusterapi.controllers import events, history, pods
from clusterapi.controllers.base import Obj
from clusterapi.controllers.deployment import int_or_percent
from clusterapi.controllers.statefulset.identity import (
    COMPONENT,
    claim_kind,
    claim_name,
    claim_references,
    identity_labels,
    is_healthy,
    is_running_and_ready,
    new_claim,
    new_pod,
    ordinal_of,
    pod_revision,
)
from clusterapi.store.errors import ApiError


class Stop(Exception):
    """``OrderedReady`` must wait before touching the next pod."""


@dataclass
class Sync:
    """One reconcile of one StatefulSet (see the module docstring)."""

    sts: Obj
    revisions: history.Revisions
    now: datetime
    replicas: list[Obj | None] = field(default_factory=list)
    condemned: list[Obj] = field(default_factory=list)
    claims: dict[str, Obj] = field(default_factory=dict)
    failure: tuple[str, str] | None = None
    waiting: bool = False  # held up by something only time resolves (a stale claim)

    @property
    def name(self) -> str:
        return str(self.sts["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.sts["metadata"]["namespace"])

    @property
    def spec(self) -> Obj:
        return self.sts.get("spec") or {}

    @property
    def start(self) -> int:
        return int((self.spec.get("ordinals") or {}).get("start") or 0)

    @property
    def monotonic(self) -> bool:
        return self.spec.get("podManagementPolicy") != "Parallel"

    @property
    def min_ready(self) -> int:
        return int(self.spec.get("minReadySeconds") or 0)

    @property
    def strategy(self) -> Obj:
        return self.spec.get("updateStrategy") or {}

    def available(self, pod: Obj) -> bool:
        return is_running_and_ready(pod) and pods.is_available(pod, self.min_ready, self.now)

    def event(self, type_: str, reason: str, message: str) -> None:
        events.record(self.sts, type_, reason, message, component=COMPONENT)

    # --- writes ------------------------------------------------------------------------------

    def delete_pod(self, pod: Obj) -> Obj | None:
        """Delete a pod; returns it as it now is (terminating), or None once gone."""
        meta = pod["metadata"]
        try:
            result = store.delete(
                pods.pod_kind(), self.namespace, meta["name"], precondition_uid=meta["uid"]
            )
        except ApiError as exc:
            if exc.reason == "NotFound":
                return None
            self.event(
                events.WARNING,
                "FailedDelete",
                f"delete Pod {meta['name']} in StatefulSet {self.name} failed error: {exc}",
            )
            self.failure = ("FailedDelete", str(exc))
            raise Stop from exc
        self.event(
            events.NORMAL,
            "SuccessfulDelete",
            f"delete Pod {meta['name']} in StatefulSet {self.name} successful",
        )
        return None if result.deleted else result.obj

    def create_pod(self, index: int) -> Obj:
        ordinal = self.start + index
        partition = int((self.strategy.get("rollingUpdate") or {}).get("partition") or 0)
        # Below the partition a RollingUpdate keeps recreating pods at the current revision.
        if self.strategy.get("type", "RollingUpdate") == "RollingUpdate" and index < partition:
            revision = self.revisions.current
        else:
            revision = self.revisions.update
        pod = new_pod(
            self.sts, history.template_of(revision), revision["metadata"]["name"], ordinal
        )
        self.ensure_claims(pod, ordinal)
        try:
            created = store.create(
                pods.pod_kind(), pod, namespace=self.namespace, field_manager=COMPONENT
            ).obj
        except ApiError as exc:
            if exc.reason == "AlreadyExists":
                # A concurrent run created it; the next round sees it.
                raise Stop from exc
            if pods.namespace_terminating(exc):
                raise Stop from exc
            self.event(
                events.WARNING,
                "FailedCreate",
                f"create Pod {pod['metadata']['name']} in StatefulSet {self.name} failed "
                f"error: {exc}",
            )
            self.failure = ("FailedCreate", str(exc))
            raise Stop from exc
        self.event(
            events.NORMAL,
            "SuccessfulCreate",
            f"create Pod {created['metadata']['name']} in StatefulSet {self.name} successful",
        )
        return created

    def ensure_claims(self, pod: Obj, ordinal: int) -> None:
        """Create the pod's missing claims; stop while an old one is still going away."""
        for template in self.spec.get("volumeClaimTemplates") or ():
            wanted = new_claim(self.sts, template, ordinal)
            name = wanted["metadata"]["name"]
            existing = self.claims.get(name)
            if existing is not None:
                stale = existing["metadata"].get("deletionTimestamp") or any(
                    r.get("kind") == "Pod" and r.get("uid") != pod["metadata"].get("uid")
                    for r in existing["metadata"].get("ownerReferences") or ()
                )
                if stale:
                    # The claim of a scaled-away pod is being collected: wait for it to go
                    # rather than bind the new pod to storage about to vanish.
                    self.waiting = True
                    raise Stop
                continue
            try:
                self.claims[name] = store.create(
                    claim_kind(), wanted, namespace=self.namespace, field_manager=COMPONENT
                ).obj
            except ApiError as exc:
                if exc.reason == "AlreadyExists":
                    continue
                self.event(
                    events.WARNING,
                    "FailedCreate",
                    f"create Claim {name} for Pod {pod['metadata']['name']} in StatefulSet "
                    f"{self.name} failed error: {exc}",
                )
                self.failure = ("FailedCreate", str(exc))
                raise Stop from exc
            self.event(
                events.NORMAL,
                "SuccessfulCreate",
                f"create Claim {name} Pod {pod['metadata']['name']} in StatefulSet "
                f"{self.name} success",
            )

    def fix_claim_owners(self, pod: Obj, ordinal: int, scaled_down: bool) -> None:
        """Bring the pod's claims' ownerReferences in line with the retention policy."""
        for template in self.spec.get("volumeClaimTemplates") or ():
            name = claim_name(template, self.name, ordinal)
            claim = self.claims.get(name)
            if claim is None or claim["metadata"].get("deletionTimestamp"):
                continue
            refs = claim_references(claim, self.sts, pod, scaled_down)
            if refs == list(claim["metadata"].get("ownerReferences") or ()):
                continue

            def mutate(current: Obj, refs: list[Obj] = refs) -> Obj:
                if refs:
                    current["metadata"]["ownerReferences"] = refs
                else:
                    current["metadata"].pop("ownerReferences", None)
                return current

            self.claims[name] = store.guaranteed_update(
                claim_kind(), self.namespace, name, mutate, field_manager=COMPONENT
            ).obj

    def fix_identity(self, pod: Obj, ordinal: int) -> Obj:
        """Restore identity labels someone removed (``identityMatches``/``updateIdentity``)."""
        wanted = identity_labels(self.name, ordinal)
        labels = pod["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in wanted.items()):
            return pod

        def mutate(current: Obj) -> Obj:
            current["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}), **wanted}
            return current

        name = pod["metadata"]["name"]
        updated = store.guaranteed_update(
            pods.pod_kind(), self.namespace, name, mutate, field_manager=COMPONENT
        ).obj
        self.event(
            events.NORMAL,
            "SuccessfulUpdate",
            f"update Pod {name} in StatefulSet {self.name} successful",
        )
        return updated

    # --- the steps ---------------------------------------------------------------------------

    def run(self) -> None:
        """Steps 4 to 6; ``Stop`` ends the round early (ordered waiting or a failure)."""
        try:
            for index in range(len(self.replicas)):
                self.process_replica(index)
            if self.spec.get("volumeClaimTemplates"):
                for pod in self.condemned:
                    ordinal = ordinal_of(self.name, pod)
                    if ordinal is not None and not pod["metadata"].get("deletionTimestamp"):
                        self.fix_claim_owners(pod, ordinal, scaled_down=True)
            first_unhealthy = self.first_unhealthy()
            for index in range(len(self.condemned)):
                self.process_condemned(index, first_unhealthy)
            if self.strategy.get("type", "RollingUpdate") == "RollingUpdate":
                self.rolling_update()
        except Stop:
            return

    def first_unhealthy(self) -> Obj | None:
        for pod in self.replicas:
            if pod is not None and not (is_healthy(pod) and self.available(pod)):
                return pod
        return next((p for p in reversed(self.condemned) if not is_healthy(p)), None)

    def process_replica(self, index: int) -> None:
        pod = self.replicas[index]
        ordinal = self.start + index
        if pod is not None and pods.phase(pod) in pods.TERMINAL_PHASES:
            if not pod["metadata"].get("deletionTimestamp"):
                if pods.phase(pod) == "Failed":
                    self.event(
                        events.WARNING,
                        "RecreatingFailedPod",
                        f"StatefulSet {self.namespace}/{self.name} is recreating failed Pod "
                        f"{pod['metadata']['name']}",
                    )
                self.replicas[index] = self.delete_pod(pod)
            # The replacement is created once the old pod is gone from the store.
            if self.monotonic:
                raise Stop
            return
        if pod is None:
            pod = self.replicas[index] = self.create_pod(index)
            if self.monotonic:
                raise Stop
        if pods.phase(pod) == "Pending" and not pod["metadata"].get("deletionTimestamp"):
            self.ensure_claims(pod, ordinal)
        if self.monotonic and not (is_healthy(pod) and self.available(pod)):
            raise Stop
        if pod["metadata"].get("deletionTimestamp"):
            return
        self.replicas[index] = self.fix_identity(pod, ordinal)
        self.fix_claim_owners(pod, ordinal, scaled_down=False)

    def process_condemned(self, index: int, first_unhealthy: Obj | None) -> None:
        pod = self.condemned[index]
        if pod["metadata"].get("deletionTimestamp"):
            if self.monotonic:
                raise Stop
            return
        healthy = is_healthy(pod) and self.available(pod)
        # Ordered scale-down deletes an unhealthy pod only when it is the first unhealthy one
        # (otherwise a broken pod could never be scaled away); healthy pods go in turn.
        if self.monotonic and not healthy and pod is not first_unhealthy:
            raise Stop
        gone = self.delete_pod(pod)
        if gone is not None:
            self.condemned[index] = gone
        if self.monotonic:
            raise Stop

    def rolling_update(self) -> None:
        """Replace pods not on the update revision, highest ordinal first."""
        update_name = self.revisions.update["metadata"]["name"]
        rolling = self.strategy.get("rollingUpdate") or {}
        partition = int(rolling.get("partition") or 0)
        if rolling.get("maxUnavailable") is not None:
            self._rolling_max_unavailable(rolling["maxUnavailable"], partition, update_name)
            return
        for index in range(len(self.replicas) - 1, partition - 1, -1):
            pod = self.replicas[index]
            if pod is None:
                return
            if pod_revision(pod) != update_name and not pod["metadata"].get("deletionTimestamp"):
                self.replicas[index] = self.delete_pod(pod)
                return
            if not is_healthy(pod):
                return

    def _rolling_max_unavailable(self, raw: object, partition: int, update_name: str) -> None:
        allowed = max(int_or_percent(raw, len(self.replicas), round_up=False), 1)
        unavailable = sum(
            1 for p in self.replicas if p is None or not (is_healthy(p) and self.available(p))
        )
        budget = allowed - unavailable
        for index in range(len(self.replicas) - 1, partition - 1, -1):
            if budget <= 0:
                return
            pod = self.replicas[index]
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                continue
            if pod_revision(pod) != update_name:
                self.replicas[index] = self.delete_pod(pod)
                budget -= 1

    # --- status ------------------------------------------------------------------------------

    def status(self) -> Obj:
        """The new status (``updateStatus`` then ``completeRollingUpdate``)."""
        current_name = self.revisions.current["metadata"]["name"]
        update_name = self.revisions.update["metadata"]["name"]
        count = ready = available = current = updated = 0
        for pod in [*self.replicas, *self.condemned]:
            if pod is None:
                continue
            count += 1
            if is_running_and_ready(pod):
                ready += 1
                if pods.is_available(pod, self.min_ready, self.now):
                    available += 1
            if not pod["metadata"].get("deletionTimestamp"):
                current += pod_revision(pod) == current_name
                updated += pod_revision(pod) == update_name
        if (
            self.strategy.get("type", "RollingUpdate") == "RollingUpdate"
            and updated == count
            and ready == count
        ):
            current, current_name = updated, update_name
        status: Obj = {}
        generation = int(self.sts["metadata"].get("generation") or 0)
        if generation:
            status["observedGeneration"] = generation
        status["replicas"] = count
        # Zero counts are omitted, as Go's omitempty serialises them.
        for key, value in (
            ("readyReplicas", ready),
            ("currentReplicas", current),
            ("updatedReplicas", updated),
        ):
            if value:
                status[key] = value
        status["currentRevision"] = current_name
        status["updateRevision"] = update_name
        status["collisionCount"] = self.revisions.collision_count
        conditions = failure_conditions(self.sts, self.failure, self.now)
        if conditions:
            status["conditions"] = conditions
        status["availableReplicas"] = available
        return status


def failure_conditions(sts: Obj, failure: tuple[str, str] | None, now: datetime) -> list[Obj]:
    """The old conditions with ``ReplicaFailure`` set while pod or claim writes fail."""
    old = [c for c in (sts.get("status") or {}).get("conditions") or () if isinstance(c, dict)]
    kept = [c for c in old if c.get("type") != "ReplicaFailure"]
    if failure is None:
        return kept
    previous = next((c for c in old if c.get("type") == "ReplicaFailure"), None)
    reason, message = failure
    if previous is not None and previous.get("reason") == reason:
        return old
    return [
        *kept,
        {
            "type": "ReplicaFailure",
            "status": "True",
            "lastTransitionTime": pods.format_time(now),
            "reason": reason,
            "message": message,
        },
    ]
