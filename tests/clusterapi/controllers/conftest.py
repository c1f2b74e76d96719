"""Fixtures and helpers for the workload controller tests.

The tests drive the loops the way Celery would, by calling ``reconcile`` directly and
repeatedly (committed writes enqueue nothing in unit tests), and play the parts of the
scheduler and the node agents themselves: binding pods and reporting them ready through the
store. Time is the controllers' clock (``pods.utcnow``), which a test moves forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import pods
from clusterapi.resources import registered as kind
from clusterapi.resources.registry import Kind
from tests.live import RedisServer

Obj = dict[str, Any]
NS = "team"


POD = kind("v1", "Pod")
RS = kind("apps/v1", "ReplicaSet")
RC = kind("v1", "ReplicationController")
DEPLOYMENT = kind("apps/v1", "Deployment")
NAMESPACE = kind("v1", "Namespace")
CONFIGMAP = kind("v1", "ConfigMap")


class Clock:
    """The controllers' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def stamp(self) -> str:
        return pods.format_time(self.now)


@pytest.fixture(autouse=True)
def local_cache(settings: Any) -> None:
    """A private in-memory cache: reconcile locks never meet another test run's."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(pods, "utcnow", fake)
    return fake


@pytest.fixture
def ns(db: None) -> str:
    store.create(NAMESPACE, {"metadata": {"name": NS}})
    return NS


def template(labels: dict[str, str], image: str = "nginx:1.25", **annotations: str) -> Obj:
    meta: Obj = {"labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"metadata": meta, "spec": {"containers": [{"name": "web", "image": image}]}}


def replicaset(name: str, replicas: int, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    labels = labels or {"app": name}
    return store.create(
        RS,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": template(labels),
                **spec,
            },
        },
        namespace=NS,
    ).obj


def get(kind_: Kind, name: str, namespace: str = NS) -> Obj:
    return store.get(kind_, namespace, name)


def all_pods() -> list[Obj]:
    return store.list_objects(POD, NS).objects()


def pods_of(owner: Obj) -> list[Obj]:
    """The pods ``owner`` controls, terminating ones included."""
    return [p for p in all_pods() if pods.is_controlled_by(p, owner)]


def active_pods_of(owner: Obj) -> list[Obj]:
    return [p for p in pods_of(owner) if pods.is_active(p)]


def update(kind_: Kind, name: str, change: Callable[[Obj], None], subresource: str = "") -> Obj:
    def mutate(obj: Obj) -> Obj:
        change(obj)
        return obj

    return store.guaranteed_update(kind_, NS, name, mutate, subresource=subresource).obj


def make_ready(pod: Obj, at: str, *, node: str = "node-1") -> None:
    """What the scheduler and a node agent would do: bind the pod, report it Running and Ready."""
    name = pod["metadata"]["name"]

    def bind(obj: Obj) -> None:
        obj["spec"].setdefault("nodeName", node)

    def ready(obj: Obj) -> None:
        obj["status"]["phase"] = "Running"
        obj["status"]["conditions"] = [
            {"type": "Ready", "status": "True", "lastTransitionTime": at},
        ]

    if not pod["spec"].get("nodeName"):
        update(POD, name, bind)
    update(POD, name, ready, subresource="status")


def make_all_ready(pod_list: list[Obj], at: str) -> None:
    for pod in pod_list:
        if pods.is_active(pod) and not pods.is_ready(pod):
            make_ready(pod, at)


def finish_terminating() -> None:
    """What node agents do once containers stop: remove pods whose grace period runs."""
    for pod in all_pods():
        if pod["metadata"].get("deletionTimestamp"):
            try:
                store.delete(POD, NS, pod["metadata"]["name"], grace_period=0)
            except store.ApiError as exc:
                if exc.reason != "NotFound":
                    raise


def deployment(
    name: str,
    replicas: int,
    image: str = "nginx:1.25",
    *,
    strategy: Obj | None = None,
    **spec: Any,
) -> Obj:
    labels = {"app": name}
    body: Obj = {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": template(labels, image),
            **spec,
        },
    }
    if strategy is not None:
        body["spec"]["strategy"] = strategy
    return store.create(DEPLOYMENT, body, namespace=NS).obj


def replicasets_of(owner: Obj) -> list[Obj]:
    return [rs for rs in store.list_objects(RS, NS).objects() if pods.is_controlled_by(rs, owner)]


def rollout_complete(name: str) -> bool:
    """``kubectl rollout status``'s test for a Deployment (a timed-out rollout fails it)."""
    obj = get(DEPLOYMENT, name)
    status = obj.get("status") or {}
    if int(obj["metadata"]["generation"]) > int(status.get("observedGeneration") or 0):
        return False
    for condition in status.get("conditions") or ():
        if condition["type"] == "Progressing" and condition["reason"] == "ProgressDeadlineExceeded":
            raise AssertionError(f'deployment "{name}" exceeded its progress deadline')
    want = int(obj["spec"]["replicas"])
    updated = int(status.get("updatedReplicas") or 0)
    return not (
        updated < want
        or int(status.get("replicas") or 0) > updated
        or int(status.get("availableReplicas") or 0) < updated
    )


# --- StatefulSets, DaemonSets and their history ---------------------------------------------------

STATEFULSET = kind("apps/v1", "StatefulSet")
DAEMONSET = kind("apps/v1", "DaemonSet")
REVISION = kind("apps/v1", "ControllerRevision")
CLAIM = kind("v1", "PersistentVolumeClaim")
NODE = kind("v1", "Node")
EVENT = kind("v1", "Event")


def statefulset(name: str, replicas: int, image: str = "nginx:1.25", **spec: Any) -> Obj:
    labels = {"app": name}
    body: Obj = {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": labels},
            "template": template(labels, image),
            **spec,
        },
    }
    return store.create(STATEFULSET, body, namespace=NS).obj


def daemonset(name: str, image: str = "fluentd:1", **spec: Any) -> Obj:
    labels = {"app": name}
    body: Obj = {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": template(labels, image),
            **spec,
        },
    }
    return store.create(DAEMONSET, body, namespace=NS).obj


def node(name: str, labels: dict[str, str] | None = None, taints: list[Obj] | None = None) -> Obj:
    """A Node as a node agent registers it (ready, with room for pods)."""
    body: Obj = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints} if taints else {},
    }
    return store.create(NODE, body).obj


def events_of(involved: Obj) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the events about ``involved``."""
    uid = involved["metadata"]["uid"]
    return sorted(
        (e["type"], e["reason"], e["message"])
        for e in store.list_objects(EVENT, NS).objects()
        if e["involvedObject"].get("uid") == uid
    )


def revisions_of(owner: Obj) -> list[Obj]:
    """The owner's ControllerRevisions, lowest revision number first."""
    return sorted(
        (r for r in store.list_objects(REVISION, NS).objects() if pods.is_controlled_by(r, owner)),
        key=lambda r: int(r["revision"]),
    )


def set_image(kind_: Kind, name: str, image: str) -> Obj:
    def change(obj: Obj) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = image

    return update(kind_, name, change)


def pod_named(name: str) -> Obj | None:
    try:
        return store.get(POD, NS, name)
    except store.ApiError as exc:
        if exc.reason == "NotFound":
            return None
        raise


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis for a module's live server (append-only, so a restart keeps data)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=True).start()
    try:
        yield server
    finally:
        server.stop()
