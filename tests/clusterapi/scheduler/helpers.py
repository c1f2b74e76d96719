"""Builders for scheduler tests: nodes, pods and snapshots without a database."""

from __future__ import annotations

import itertools
from typing import Any

from clusterapi.scheduler.framework import CycleState, NodeInfo, PodInfo, Snapshot

Obj = dict[str, Any]
_serial = itertools.count()


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
    extra: dict[str, str] | None = None,
) -> Obj:
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {"kubernetes.io/hostname": name, **(labels or {})},
        },
        "spec": spec,
        "status": {"allocatable": allocatable, "capacity": dict(allocatable)},
    }


def container(cpu: str | None = None, memory: str | None = None, **more: Any) -> Obj:
    requests = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    out: Obj = {"name": f"c{next(_serial)}", "image": "pause"}
    if requests:
        out["resources"] = {"requests": requests}
    out.update(more)
    return out


def pod(
    name: str,
    *,
    namespace: str = "default",
    cpu: str | None = None,
    memory: str | None = None,
    containers: list[Obj] | None = None,
    labels: dict[str, str] | None = None,
    node_name: str = "",
    priority: int = 0,
    **spec: Any,
) -> Obj:
    body: Obj = {
        "containers": containers if containers is not None else [container(cpu, memory)],
        "priority": priority,
        **spec,
    }
    if node_name:
        body["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "labels": labels or {},
            "creationTimestamp": f"2030-01-01T00:00:{next(_serial) % 60:02d}Z",
        },
        "spec": body,
        "status": {"phase": "Running" if node_name else "Pending"},
    }


def snapshot(nodes: list[Obj], pods: list[Obj] = ()) -> Snapshot:  # type: ignore[assignment]
    snap = Snapshot()
    for n in nodes:
        snap.set_node(n)
    for p in pods:
        info = PodInfo(p)
        snap.add_pod(info, info.node_name)
    return snap


def state(snap: Snapshot | None = None) -> CycleState:
    return CycleState(snap or Snapshot())


def info(obj: Obj, pods: list[Obj] = ()) -> NodeInfo:  # type: ignore[assignment]
    n = NodeInfo(obj)
    for p in pods:
        n.add_pod(PodInfo(p))
    return n
