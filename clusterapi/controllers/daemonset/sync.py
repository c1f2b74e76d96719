"""One DaemonSet reconcile's pod work: manage nodes, roll out, count the status.

``Sync`` holds the DaemonSet, the nodes, the pods grouped by target node and the hash of the
update revision, and runs steps 4 to 6 of the package's flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from clusterapi import store
from clusterapi.controllers import events, history, pods
from clusterapi.controllers.base import Obj
from clusterapi.controllers.daemonset.placement import (
    COMPONENT,
    backoff,
    daemon_template,
    node_should_run,
    oldest_first,
    pin_to_node,
)
from clusterapi.store.errors import ApiError


@dataclass
class Sync:
    """One reconcile of one DaemonSet (see the module docstring)."""

    ds: Obj
    nodes: dict[str, Obj]
    node_pods: dict[str, list[Obj]]
    hash: str
    now: datetime
    failure: tuple[str, str] | None = None
    wait: float | None = None
    plans: dict[str, tuple[bool, bool]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.ds["metadata"]["name"])

    @property
    def min_ready(self) -> int:
        return int((self.ds.get("spec") or {}).get("minReadySeconds") or 0)

    def later(self, seconds: float) -> None:
        self.wait = seconds if self.wait is None else min(self.wait, seconds)

    def event(self, type_: str, reason: str, message: str) -> None:
        events.record(self.ds, type_, reason, message, component=COMPONENT)

    def is_updated(self, pod: Obj) -> bool:
        return (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL) == self.hash

    def available(self, pod: Obj) -> bool:
        return pods.is_available(pod, self.min_ready, self.now)

    def plan(self, node_name: str) -> tuple[bool, bool]:
        node = self.nodes.get(node_name)
        if node is None:
            return False, False
        if node_name not in self.plans:
            self.plans[node_name] = node_should_run(node, daemon_template(self.ds))
        return self.plans[node_name]

    # --- writes -------------------------------------------------------------------------------

    def create_on(self, node_names: Iterable[str]) -> None:
        template = daemon_template(self.ds)
        labels = (template.setdefault("metadata", {}).get("labels")) or {}
        template["metadata"]["labels"] = {**labels, history.HASH_LABEL: self.hash}
        for node_name in node_names:
            try:
                pod = pods.create_pod(
                    pin_to_node(template, node_name), self.ds, field_manager=COMPONENT
                )
            except ApiError as exc:
                if pods.namespace_terminating(exc):
                    return
                self.event(events.WARNING, "FailedCreate", f"Error creating: {exc}")
                self.failure = ("FailedCreate", str(exc))
                # Like a failed slow-start batch: the remaining creates would fail alike.
                return
            self.node_pods.setdefault(node_name, []).append(pod)
            self.event(events.NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    def delete(self, victims: Iterable[Obj], *, force: bool = False) -> None:
        for pod in victims:
            meta = pod["metadata"]
            try:
                result = store.delete(
                    pods.pod_kind(),
                    meta["namespace"],
                    meta["name"],
                    precondition_uid=meta["uid"],
                    grace_period=0 if force else None,
                )
            except ApiError as exc:
                if exc.reason == "NotFound":
                    continue
                self.event(events.WARNING, "FailedDelete", f"Error deleting: {exc}")
                self.failure = ("FailedDelete", str(exc))
                continue
            self.event(events.NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")
            for node_pods in self.node_pods.values():
                for index, candidate in enumerate(node_pods):
                    if candidate["metadata"]["uid"] == meta["uid"]:
                        if result.deleted:
                            del node_pods[index]
                        else:
                            node_pods[index] = result.obj
                        break

    # --- manage -------------------------------------------------------------------------------

    def manage(self, surge: bool) -> None:
        """Step 4: create, keep, clean up and remove pods node by node (``manage``)."""
        create: list[str] = []
        victims: list[Obj] = []
        for node_name in sorted(self.nodes):
            should_run, should_continue = self.plan(node_name)
            daemon_pods = self.node_pods.get(node_name, [])
            if should_run and not daemon_pods:
                create.append(node_name)
            elif should_continue:
                victims.extend(self._cleanup_node(node_name, daemon_pods, surge))
            else:
                victims.extend(p for p in daemon_pods if not p["metadata"].get("deletionTimestamp"))
        orphaned = [
            pod
            for node_name, node_pods in self.node_pods.items()
            if node_name not in self.nodes
            for pod in node_pods
        ]
        self.delete(victims)
        # No kubelet will ever stop a pod of a node that is gone (upstream's pod GC removes
        # them), so those are deleted at once rather than left terminating forever.
        self.delete(orphaned, force=True)
        self.create_on(create)

    def _cleanup_node(self, node_name: str, daemon_pods: list[Obj], surge: bool) -> list[Obj]:
        victims: list[Obj] = []
        running: list[Obj] = []
        for pod in daemon_pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            phase = pods.phase(pod)
            if phase == "Failed":
                wait = backoff(self.ds, node_name, self.now)
                if wait is not None:
                    self.later(wait)
                    continue
                meta = pod["metadata"]
                self.event(
                    events.WARNING,
                    "FailedDaemonPod",
                    f"Found failed daemon pod {meta['namespace']}/{meta['name']} on node "
                    f"{node_name}, will try to kill it",
                )
                victims.append(pod)
            elif phase == "Succeeded":
                victims.append(pod)
            else:
                running.append(pod)
        if len(running) <= 1:
            return victims
        running.sort(key=oldest_first)
        if not surge:
            return victims + running[1:]
        # With surge, an old and a new pod may run side by side while the new one starts:
        # keep the oldest of each, and the old one only while it is ready and the new is not.
        oldest_new = next((p for p in running if self.is_updated(p)), None)
        oldest_old = next((p for p in running if not self.is_updated(p)), None)
        victims.extend(p for p in running if p is not oldest_new and p is not oldest_old)
        if (
            oldest_new is not None
            and oldest_old is not None
            and (not pods.is_ready(oldest_old) or pods.is_ready(oldest_new))
        ):
            victims.append(oldest_old)
        return victims

    # --- rolling update -----------------------------------------------------------------------

    def _updated_pods_on(self, node_pods: list[Obj]) -> tuple[Obj | None, Obj | None, bool]:
        """(new pod, old pod, ok) for a node (``findUpdatedPodsOnNode``): not ok on duplicates."""
        new = old = None
        for pod in node_pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if self.is_updated(pod):
                if new is not None:
                    return None, None, False
                new = pod
            else:
                if old is not None:
                    return None, None, False
                old = pod
        return new, old, True

    def rolling_update(self, max_surge: int, max_unavailable: int) -> None:
        """Step 5 (``rollingUpdate``)."""
        if max_surge == 0:
            unavailable = 0
            replace: list[Obj] = []
            candidates: list[Obj] = []
            for node_name in sorted(self.node_pods):
                new, old, ok = self._updated_pods_on(self.node_pods[node_name])
                if not ok or (new is None) == (old is None):
                    # The manage step is still fixing this node: count it unavailable.
                    unavailable += 1
                elif new is not None:
                    unavailable += not self.available(new)
                elif old is not None and not self.available(old):
                    replace.append(old)
                elif old is not None and unavailable < max_unavailable:
                    candidates.append(old)
            budget = max(0, min(max_unavailable - unavailable, len(candidates)))
            self.delete(replace + candidates[:budget])
            return
        surging = 0
        allowed: list[str] = []
        candidate_nodes: list[str] = []
        old_done: list[Obj] = []
        for node_name in sorted(self.node_pods):
            new, old, ok = self._updated_pods_on(self.node_pods[node_name])
            if not ok:
                surging += 1
            elif old is None:
                continue
            elif new is None:
                if not self.available(old):
                    if not self.plan(node_name)[0]:
                        old_done.append(old)
                    else:
                        allowed.append(node_name)
                elif surging < max_surge:
                    candidate_nodes.append(node_name)
            elif not self.available(new):
                surging += 1
            else:
                old_done.append(old)
        room = max(0, min(max_surge - surging, len(candidate_nodes)))
        self.delete(old_done)
        self.create_on(allowed + candidate_nodes[:room])

    # --- status -------------------------------------------------------------------------------

    def status(self, collision_count: int) -> Obj:
        """The new status (``updateDaemonSetStatus``), in upstream's field order."""
        desired = current = misscheduled = ready = available = updated = 0
        for node_name in sorted(self.nodes):
            should_run, _ = self.plan(node_name)
            node_pods = sorted(self.node_pods.get(node_name, []), key=oldest_first)
            if not should_run:
                misscheduled += bool(node_pods)
                continue
            desired += 1
            if not node_pods:
                continue
            current += 1
            pod = node_pods[0]
            if pods.is_ready(pod):
                ready += 1
                available += self.available(pod)
            updated += self.is_updated(pod)
        status: Obj = {
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
        }
        generation = int(self.ds["metadata"].get("generation") or 0)
        if generation:
            status["observedGeneration"] = generation
        # Zero counts are omitted, as Go's omitempty serialises them.
        for key, value in (
            ("updatedNumberScheduled", updated),
            ("numberAvailable", available),
            ("numberUnavailable", desired - available),
        ):
            if value:
                status[key] = value
        status["collisionCount"] = collision_count
        conditions = failure_conditions(self.ds, self.failure, self.now)
        if conditions:
            status["conditions"] = conditions
        return status


def failure_conditions(ds: Obj, failure: tuple[str, str] | None, now: datetime) -> list[Obj]:
    """The old conditions with ``ReplicaFailure`` set while pod writes fail."""
    old = [c for c in (ds.get("status") or {}).get("conditions") or () if isinstance(c, dict)]
    kept = [c for c in old if c.get("type") != "ReplicaFailure"]
    if failure is None:
        return kept
    previous = next((c for c in old if c.get("type") == "ReplicaFailure"), None)
    if previous is not None and previous.get("reason") == failure[0]:
        return old
    condition = {
        "type": "ReplicaFailure",
        "status": "True",
        "lastTransitionTime": pods.format_time(now),
        "reason": failure[0],
        "message": failure[1],
    }
    return [*kept, condition]
