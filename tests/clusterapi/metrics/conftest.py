"""Nodes, pods and node credentials for the metrics tests."""

from __future__ import annotations

import time
from typing import Any

import pytest

from clusterapi import store
from clusterapi.nodeagent import credentials
from clusterapi.resources import by_kind

Obj = dict[str, Any]
NODE_KIND = by_kind("v1", "Node")
POD_KIND = by_kind("v1", "Pod")
NAMESPACE_KIND = by_kind("v1", "Namespace")


def make_node(name: str, labels: dict[str, str] | None = None) -> Obj:
    assert NODE_KIND is not None
    body = {"metadata": {"name": name, "labels": labels or {}}, "spec": {}}
    return store.create(NODE_KIND, body).obj


def make_pod(namespace: str, name: str, node: str, labels: dict[str, str] | None = None) -> Obj:
    assert POD_KIND is not None
    body = {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "python"}]},
    }
    return store.create(POD_KIND, body, namespace=namespace).obj


def entry(node: str, pods: list[Obj] | None = None, cpu: int = 250_000_000) -> Obj:
    return {
        "node": node,
        "time": round(time.time(), 3),
        "window": 15.004,
        "cpu": cpu,
        "memory": 1024 * 1024 * 1024,
        "pods": pods or [],
    }


def pod_entry(pod: Obj, cpu: int = 1_200_000, memory: int = 50 * 1024 * 1024) -> Obj:
    meta = pod["metadata"]
    return {
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "window": 15.004,
        "containers": [{"name": "main", "cpu": cpu, "memory": memory}],
    }


@pytest.fixture
def cluster(db: None) -> dict[str, Any]:
    """Nodes a and b with a credential each, namespace ns, pods pa (on a) and pb (on b)."""
    from clusterapi.core.models import Revision

    # A transactional test flushes the row the migration seeds.
    Revision.objects.get_or_create(pk=1, defaults={"value": 0})
    assert NAMESPACE_KIND is not None
    store.create(NAMESPACE_KIND, {"metadata": {"name": "ns"}})
    make_node("a", {"zone": "z1"})
    make_node("b", {"zone": "z2"})
    issued = credentials.issue_credentials(["a", "b"], "test")
    tokens = {c["nodeName"]: c["token"] for c in issued}
    return {
        "tokens": tokens,
        "pa": make_pod("ns", "pa", "a", {"app": "web"}),
        "pb": make_pod("ns", "pb", "b", {"app": "db"}),
    }
