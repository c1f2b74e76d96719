"""Fixtures for scheduler tests that go through the store (a real database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clusterapi import scheduler as scheduling
from clusterapi import store
from clusterapi.resources import registered as kind
from clusterapi.scheduler import Scheduler
from tests.clusterapi.scheduler import helpers

Obj = dict[str, Any]
NS = "team"


POD = kind("v1", "Pod")
NODE = kind("v1", "Node")
EVENT = kind("v1", "Event")
PDB = kind("policy/v1", "PodDisruptionBudget")
PRIORITY_CLASS = kind("scheduling.k8s.io/v1", "PriorityClass")


@pytest.fixture
def cluster(db: None) -> Obj:
    """A namespace to work in (nodes are added by each test)."""
    return store.create(kind("v1", "Namespace"), {"metadata": {"name": NS}}).obj


@pytest.fixture
def sched(cluster: Obj) -> Iterator[Scheduler]:
    """A scheduler with a seeded tie-breaker, also installed as the process-wide one."""
    instance = Scheduler(seed=1)
    scheduling.reset(instance)
    yield instance
    scheduling.reset(None)


@pytest.fixture
def add_node(cluster: Obj) -> Callable[..., Obj]:
    def add(name: str, **kw: Any) -> Obj:
        body = helpers.node(name, **kw)
        for key in ("uid", "creationTimestamp"):
            body["metadata"].pop(key, None)
        return store.create(NODE, body).obj

    return add


@pytest.fixture
def add_pod(cluster: Obj) -> Callable[..., Obj]:
    def add(name: str, **kw: Any) -> Obj:
        body = helpers.pod(name, namespace=NS, **kw)
        body["spec"].pop("priority", None)  # admission resolves it from the class
        for key in ("uid", "creationTimestamp"):
            body["metadata"].pop(key, None)
        body.pop("status", None)
        return store.create(POD, body, namespace=NS).obj

    return add


def get_pod(name: str) -> Obj:
    return store.get(POD, NS, name)


def condition(pod: Obj, type_: str) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return None


def events_for(name: str) -> list[Obj]:
    return [
        e for e in store.list_objects(EVENT, NS).objects() if e["involvedObject"]["name"] == name
    ]
