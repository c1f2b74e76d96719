"""The scheduler's cache: nodes, pods and namespaces, kept current from the store.

Upstream's scheduler watches the API through informers; Berth's reads the same thing from the
store: a full list once, then the change log (every committed write, in revision order),
which is how the watch streams follow the store too. ``sync()`` brings the cache up to date
before each scheduling cycle or batch; it decodes only rows it does not already know (the
scheduler's own binds are applied at once by ``assume`` and skipped when their rows come
back). A change log compacted past the cache's revision forces a full relist.

Bound pods that are not terminal count on their node (upstream's informer drops Succeeded
and Failed pods); unbound pods whose ``schedulerName`` is one of ours and that are neither
being deleted nor held by scheduling gates are *pending*. ``moves`` counts events that may
make an unschedulable pod schedulable (a node added or changed, a pod leaving a node, a
namespace relabelled), which is what the queue retries on.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any

import orjson

from clusterapi import store
from clusterapi.resources import registered as kind
from clusterapi.scheduler.framework import NodeInfo, PodInfo, Snapshot

logger = logging.getLogger(__name__)

Key = tuple[str, str]
_WATCHED = ("nodes", "pods", "namespaces")
_CHUNK = 2000


def _schedulable_view(node: NodeInfo) -> tuple[Any, ...]:
    return (
        tuple(sorted(node.labels.items())),
        node.taints,
        node.unschedulable,
        node.alloc_cpu,
        node.alloc_memory,
        node.alloc_ephemeral,
        node.alloc_pods,
        tuple(sorted(node.alloc_scalar.items())),
    )


class SchedulerCache:
    """See the module docstring."""

    def __init__(self, scheduler_names: Collection[str]) -> None:
        self.scheduler_names = frozenset(scheduler_names)
        self.snapshot = Snapshot()
        self.pods: dict[Key, PodInfo] = {}
        self.pending: dict[Key, PodInfo] = {}
        self.node_versions: dict[str, str] = {}
        self.revision = -1
        self.moves = 0

    # -- reading the store --

    def sync(self) -> None:
        """Bring the cache up to the store's latest committed revision."""
        if self.revision < 0 or self.revision < store.objects.compacted_revision():
            self._relist()
        else:
            self._follow()

    def invalidate(self) -> None:
        """Forget what was assumed: the next ``sync`` lists everything again."""
        self.revision = -1

    def _relist(self) -> None:
        self.snapshot = Snapshot()
        self.pods, self.pending, self.node_versions = {}, {}, {}
        revisions = []
        nodes = store.list_objects(kind("v1", "Node"))
        revisions.append(nodes.resource_version)
        for node in nodes.objects():
            self._set_node(node)
        namespaces = store.list_objects(kind("v1", "Namespace"))
        revisions.append(namespaces.resource_version)
        for namespace in namespaces.objects():
            meta = namespace["metadata"]
            self.snapshot.set_namespace(meta["name"], meta.get("labels") or {})
        pods = store.list_objects(kind("v1", "Pod"))
        revisions.append(pods.resource_version)
        for pod in pods.objects():
            self._set_pod(PodInfo(pod))
        # Rows written while listing are replayed: applying a change twice is harmless.
        self.revision = min(revisions)
        self.moves += 1
        self._follow()

    def _follow(self) -> None:
        from clusterapi.core.models import Change

        rows = (
            Change.objects.filter(revision__gt=self.revision, group="", resource__in=_WATCHED)
            .order_by("revision")
            .values_list("revision", "type", "resource", "namespace", "name", "data")
        )
        for revision, change, resource, namespace, name, data in rows.iterator(_CHUNK):
            self.revision = revision
            if resource == "pods":
                self._pod_change(revision, change, (namespace, name), data)
            elif resource == "nodes":
                if change == "DELETED":
                    self._remove_node(name)
                elif self.node_versions.get(name) != str(revision):
                    self._set_node(orjson.loads(data))
            elif change == "DELETED":
                self.snapshot.set_namespace(name, None)
            else:
                labels = (orjson.loads(data).get("metadata") or {}).get("labels") or {}
                before = self.snapshot.epoch
                self.snapshot.set_namespace(name, labels)
                if self.snapshot.epoch != before:
                    self.moves += 1

    def _pod_change(self, revision: int, change: str, key: Key, data: str) -> None:
        current = self.pods.get(key)
        if change == "DELETED":
            if current is not None:
                self._remove_pod(current)
            return
        if current is not None and current.resource_version == str(revision):
            return  # our own write, already applied by assume()
        self._set_pod(PodInfo(orjson.loads(data)))

    # -- nodes --

    def _set_node(self, node: dict[str, Any]) -> None:
        meta = node["metadata"]
        name = str(meta["name"])
        self.node_versions[name] = str(meta.get("resourceVersion") or "")
        before = self.snapshot.nodes.get(name)
        old = _schedulable_view(before) if before is not None and before.node else None
        info = self.snapshot.set_node(node)
        # Heartbeats change only conditions: they cannot make a pending pod fit.
        if _schedulable_view(info) != old:
            self.moves += 1

    def _remove_node(self, name: str) -> None:
        self.node_versions.pop(name, None)
        self.snapshot.remove_node(name)

    # -- pods --

    def _remove_pod(self, pod: PodInfo, *, leaving: bool = True) -> None:
        self.pods.pop(pod.key, None)
        self.pending.pop(pod.key, None)
        self.snapshot.forget_nomination(pod)
        if pod.node_name and not pod.terminal:
            self.snapshot.remove_pod(pod, pod.node_name)
            if leaving:
                self.moves += 1  # its room is free again

    def _set_pod(self, pod: PodInfo) -> None:
        old = self.pods.get(pod.key)
        if old is not None:
            # A status update of a pod staying on its node frees nothing.
            staying = (
                bool(pod.node_name)
                and pod.node_name == old.node_name
                and not pod.terminal
                and pod.uid == old.uid
            )
            self._remove_pod(old, leaving=not staying)
        self.pods[pod.key] = pod
        if pod.node_name:
            if not pod.terminal:
                self.snapshot.add_pod(pod, pod.node_name)
                if pod.has_affinity_terms:
                    self.moves += 1  # may satisfy another pod's affinity
            return
        if pod.nominated_node_name and pod.scheduler_name in self.scheduler_names:
            self.snapshot.nominate(pod, pod.nominated_node_name)
        if self.is_pending(pod):
            self.pending[pod.key] = pod

    def is_pending(self, pod: PodInfo) -> bool:
        return (
            not pod.node_name
            and not pod.terminating
            and not pod.terminal
            and not pod.gated
            and pod.scheduler_name in self.scheduler_names
        )

    # -- the scheduler's own writes --

    def observe(self, obj: dict[str, Any]) -> PodInfo:
        """Apply a pod as the scheduler just wrote it (bind, status, deletion)."""
        pod = PodInfo(obj)
        self._set_pod(pod)
        return pod

    def assume(self, pod: PodInfo, obj: dict[str, Any]) -> PodInfo:
        """Place a pod the scheduler just bound, without parsing it again.

        The pending ``PodInfo`` becomes the bound one: it is no longer pending, so nothing
        else refers to it as such.
        """
        self.pending.pop(pod.key, None)
        self.snapshot.forget_nomination(pod)
        meta = obj.get("metadata") or {}
        pod.obj = obj
        pod.node_name = str((obj.get("spec") or {}).get("nodeName") or "")
        pod.resource_version = str(meta.get("resourceVersion") or "")
        pod.nominated_node_name = ""
        self.pods[pod.key] = pod
        self.snapshot.add_pod(pod, pod.node_name)
        return pod

    def forget(self, key: Key) -> None:
        current = self.pods.get(key)
        if current is not None:
            self._remove_pod(current)

    def pending_pods(self) -> Iterable[PodInfo]:
        return list(self.pending.values())
