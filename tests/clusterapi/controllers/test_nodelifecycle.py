"""The node lifecycle controller: Lease-based health, NoExecute taints and eviction."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import nodelifecycle
from clusterapi.store.errors import ApiError
from tests.clusterapi.controllers.conftest import NS, POD, kind

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]
NODE = kind("v1", "Node")
LEASE = kind("coordination.k8s.io/v1", "Lease")


class FakeClock:
    """The controller's clock, starting now and moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(nodelifecycle, "utcnow", fake)
    return fake


def micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_node(name: str, clock: FakeClock) -> Obj:
    stamp = clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {
            "type": type_,
            "status": status,
            "reason": "Kubelet",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        for type_, status in (
            ("Ready", "True"),
            ("MemoryPressure", "False"),
            ("DiskPressure", "False"),
            ("PIDPressure", "False"),
        )
    ]
    store.create(NODE, {"metadata": {"name": name}, "status": {"conditions": conditions}})
    renew(name, clock)
    return store.get(NODE, "", name)


def renew(name: str, clock: FakeClock) -> None:
    spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro(clock.now)}
    try:
        lease = store.get(LEASE, "kube-node-lease", name)
    except ApiError:
        store.create(LEASE, {"metadata": {"name": name}, "spec": spec}, namespace="kube-node-lease")
        return
    lease["spec"] = spec
    store.update(LEASE, "kube-node-lease", name, lease)


def ready(name: str) -> Obj:
    node = store.get(NODE, "", name)
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def taints(name: str) -> set[tuple[str, str]]:
    node = store.get(NODE, "", name)
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or ()}


def bound_pod(name: str, node: str, **spec: Any) -> Obj:
    body = {
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}], **spec},
    }
    return store.create(POD, body, namespace=NS).obj


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def node_lease_namespace(ns: str) -> None:
    namespace = kind("v1", "Namespace")
    for name in ("kube-node-lease",):
        with contextlib.suppress(ApiError):
            store.create(namespace, {"metadata": {"name": name}})


def test_renewing_nodes_stay_ready_and_the_periodic_pass_leaves_them_alone(
    clock: FakeClock,
) -> None:
    make_node("n1", clock)
    make_node("n2", clock)
    # A healthy node needs no timer of its own: the periodic pass watches it.
    assert nodelifecycle.reconcile("", "n1") is None
    assert nodelifecycle.reconcile(*nodelifecycle.MONITOR) == nodelifecycle.MONITOR_SECONDS
    for _ in range(10):
        clock.advance(10)
        renew("n1", clock)
        renew("n2", clock)
        assert nodelifecycle.monitor() == 0
    assert ready("n1")["status"] == ready("n2")["status"] == "True"
    assert taints("n1") == taints("n2") == set()


def test_the_periodic_pass_finds_the_node_that_stopped_renewing(clock: FakeClock) -> None:
    make_node("n1", clock)
    make_node("n2", clock)
    clock.advance(nodelifecycle.GRACE_SECONDS - 1)
    renew("n1", clock)
    assert nodelifecycle.monitor() == 0
    clock.advance(2)
    assert nodelifecycle.monitor() == 1
    assert ready("n1")["status"] == "True" and taints("n1") == set()
    assert ready("n2")["status"] == "Unknown"
    assert ("node.kubernetes.io/unreachable", "NoExecute") in taints("n2")
    # Still silent: looked at again each pass, but nothing more is written.
    before = store.get(NODE, "", "n2")["metadata"]["resourceVersion"]
    renew("n1", clock)
    assert nodelifecycle.monitor() == 1
    assert store.get(NODE, "", "n2")["metadata"]["resourceVersion"] == before


def test_a_silent_node_goes_unknown_is_tainted_and_recovers(clock: FakeClock) -> None:
    make_node("n1", clock)
    clock.advance(nodelifecycle.GRACE_SECONDS - 1)
    nodelifecycle.reconcile("", "n1")
    assert ready("n1")["status"] == "True"
    clock.advance(2)
    nodelifecycle.reconcile("", "n1")
    condition = ready("n1")
    assert condition["status"] == "Unknown"
    assert condition["reason"] == "NodeStatusUnknown"
    assert condition["message"] == "Kubelet stopped posting node status."
    node = store.get(NODE, "", "n1")
    assert {c["status"] for c in node["status"]["conditions"]} == {"Unknown"}
    assert taints("n1") == {
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoSchedule"),
    }
    noexecute = next(t for t in node["spec"]["taints"] if t["effect"] == "NoExecute")
    assert noexecute["timeAdded"]
    # The agent comes back: it reports Ready=True (and renews its lease); taints go.
    renew("n1", clock)
    store.guaranteed_update(
        NODE,
        "",
        "n1",
        lambda o: {
            **o,
            "status": {
                **o["status"],
                "conditions": [
                    {**c, "status": "True" if c["type"] == "Ready" else "False"}
                    for c in o["status"]["conditions"]
                ],
            },
        },
        subresource="status",
    )
    nodelifecycle.reconcile("", "n1")
    assert taints("n1") == set()


def test_not_ready_gives_the_not_ready_taints() -> None:
    assert nodelifecycle.wanted_taints("False") == [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/not-ready", "NoSchedule"),
    ]


def test_pods_are_marked_not_ready_and_evicted_after_their_toleration(clock: FakeClock) -> None:
    make_node("n1", clock)
    default = bound_pod("default-tolerations", "n1")
    # DefaultTolerationSeconds gave it 300 s for not-ready and unreachable.
    tolerations = {t["key"]: t for t in default["spec"]["tolerations"]}
    assert tolerations["node.kubernetes.io/unreachable"]["tolerationSeconds"] == 300
    assert tolerations["node.kubernetes.io/not-ready"]["effect"] == "NoExecute"
    bound_pod(
        "forever",
        "n1",
        tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}],
    )
    bound_pod(
        "short",
        "n1",
        tolerations=[
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 10,
            }
        ],
    )
    store.guaranteed_update(
        POD,
        NS,
        "forever",
        lambda o: {
            **o,
            "status": {**o["status"], "conditions": [{"type": "Ready", "status": "True"}]},
        },
        subresource="status",
    )
    clock.advance(nodelifecycle.GRACE_SECONDS + 1)
    delay = nodelifecycle.reconcile("", "n1")
    assert delay is not None and delay <= 10.2
    forever = store.get(POD, NS, "forever")
    assert (
        next(c for c in forever["status"]["conditions"] if c["type"] == "Ready")["status"]
        == "False"
    )

    def terminating(name: str) -> bool:
        try:
            return bool(store.get(POD, NS, name)["metadata"].get("deletionTimestamp"))
        except ApiError:
            return True

    assert not terminating("short")
    clock.advance(11)
    nodelifecycle.reconcile("", "n1")
    assert terminating("short")
    assert not terminating("default-tolerations")
    clock.advance(300)
    nodelifecycle.reconcile("", "n1")
    assert terminating("default-tolerations")
    assert not terminating("forever")


def test_untolerated_noexecute_evicts_at_once(clock: FakeClock) -> None:
    pod: Obj = {"spec": {"tolerations": []}}
    taint = {"key": "k", "effect": "NoExecute", "timeAdded": "2030-01-01T00:00:00Z"}
    assert nodelifecycle.eviction_time(pod, [taint]) == datetime(2030, 1, 1, tzinfo=UTC)
    assert (
        nodelifecycle.eviction_time({"spec": {"tolerations": [{"operator": "Exists"}]}}, [taint])
        is None
    )


def test_a_missing_node_is_converged() -> None:
    assert nodelifecycle.reconcile("", "nope") is None


def test_one_chain_of_delayed_checks_per_node(clock: FakeClock) -> None:
    make_node("n1", clock)
    toleration = {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 120,
    }
    bound_pod("p", "n1", tolerations=[toleration])
    clock.advance(nodelifecycle.GRACE_SECONDS + 1)
    # The pod's eviction is due in 120 s: one timer for it ...
    delay = nodelifecycle.reconcile("", "n1")
    assert delay is not None and 1 <= delay <= nodelifecycle.MAX_DELAY
    # ... and a second wake-up (a Node write, the pass) does not start a second one.
    assert nodelifecycle.reconcile("", "n1") is None
