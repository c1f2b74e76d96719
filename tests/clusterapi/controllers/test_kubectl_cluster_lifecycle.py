"""Node failure, Jobs and namespace deletion on a real Redis, driven by the real kubectl.

One private ``redis-server``, one live Berth (``manage.py up``: API, Celery worker and beat)
on it, with a node-monitor grace period of a few seconds instead of 40, and two simulated
node agents: ``steady`` with two nodes and ``doomed`` with one, so that killing the second
agent is a node that stops renewing its Lease. The tests show:

* an image change rolls out with never more than ``replicas + maxSurge`` pods and never
  fewer than ``replicas - maxUnavailable`` Ready (sampled throughout);
* a node whose agent dies goes ``Ready=Unknown`` and gets the ``unreachable`` taints, and a
  Deployment's pods on it are evicted once their toleration runs out and replaced on the
  other nodes;
* a Job with parallelism runs to ``Complete`` (``kubectl wait``);
* ``kubectl delete namespace`` removes what was in it (Deployment, ReplicaSet, pods,
  ConfigMap, Service) and then the namespace.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.live import Kubectl, LiveServer, RedisServer, SimulatedAgent, apply, wait_for

pytestmark = pytest.mark.e2e

GRACE_SECONDS = 6
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def live_server_berth(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("berth"))
    server.env = {
        "REDIS_URL": redis_server.url,
        "BERTH_NODE_MONITOR_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def agents(live_server_berth: LiveServer, kubectl: Kubectl) -> Iterator[dict[str, SimulatedAgent]]:
    started = {
        "steady": SimulatedAgent(live_server_berth, name="steady", nodes=2),
        "doomed": SimulatedAgent(live_server_berth, name="doomed", nodes=1),
    }
    try:
        for agent in started.values():
            agent.start()
        wait_for(lambda: len(ready_nodes(kubectl)) == 3, 60, "3 Ready nodes")
        yield started
    finally:
        for agent in started.values():
            agent.stop()


def get_json(kubectl: Kubectl, *args: str) -> Obj:
    result: Obj = json.loads(kubectl("get", *args, "-o", "json", timeout=60))
    return result


def condition(obj: Obj, kind: str) -> Obj:
    found: Obj = next(
        (c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind), {}
    )
    return found


def ready_nodes(kubectl: Kubectl) -> set[str]:
    nodes = get_json(kubectl, "nodes")["items"]
    return {n["metadata"]["name"] for n in nodes if condition(n, "Ready").get("status") == "True"}


def live_pods(kubectl: Kubectl, namespace: str) -> list[Obj]:
    """The namespace's pods that are not being deleted."""
    items: list[Obj] = get_json(kubectl, "pods", "-n", namespace)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def deployment(name: str, replicas: int, toleration_seconds: int) -> Obj:
    tolerations = [
        {
            "key": taint,
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": toleration_seconds,
        }
        for taint in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx",
                            "resources": {"requests": {"cpu": "100m"}},
                        }
                    ],
                    "tolerations": tolerations,
                    # Earlier tests leave pods behind, so least-allocated scoring alone may
                    # favour some nodes; a soft spread over hostnames puts pods on each.
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": {"app": name}},
                        }
                    ],
                },
            },
        },
    }


def test_an_image_change_rolls_within_the_surge_and_availability_bounds(
    kubectl: Kubectl, agents: dict[str, SimulatedAgent]
) -> None:
    """Five replicas, the default 25% bounds: maxSurge rounds up to 2 and maxUnavailable down
    to 1, so every consistent list of the rollout shows at most 7 pods and at least 4 Ready."""
    kubectl("create", "namespace", "rolling")
    kubectl("create", "deployment", "web", "-n", "rolling", "--image=nginx:1.25", "--replicas=5")
    kubectl("rollout", "status", "deployment/web", "-n", "rolling", "--timeout=60s", timeout=70)
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pods = live_pods(kubectl, "rolling")
            ready = sum(1 for p in pods if condition(p, "Ready").get("status") == "True")
            samples.append((len(pods), ready))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        kubectl("set", "image", "deployment/web", "-n", "rolling", "nginx=nginx:1.26")
        out = kubectl(
            "rollout", "status", "deployment/web", "-n", "rolling", "--timeout=90s", timeout=100
        )
    finally:
        done.set()
        sampler.join()
    assert 'deployment "web" successfully rolled out' in out
    images = [p["spec"]["containers"][0]["image"] for p in live_pods(kubectl, "rolling")]
    assert images == ["nginx:1.26"] * 5
    assert len(samples) >= 5, samples
    assert max(total for total, _ in samples) <= 7, samples
    assert min(ready for _, ready in samples) >= 4, samples


def test_a_node_that_stops_renewing_its_lease_goes_not_ready_and_its_pods_move(
    kubectl: Kubectl, agents: dict[str, SimulatedAgent]
) -> None:
    kubectl("create", "namespace", "failover")
    apply(
        kubectl, {**deployment("web", 6, 3), "metadata": {"name": "web", "namespace": "failover"}}
    )

    def all_running() -> list[Obj] | None:
        pods = live_pods(kubectl, "failover")
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        return running if len(running) == 6 and len(pods) == 6 else None

    running = wait_for(all_running, 90, "6 Running pods")
    on_doomed = {p["metadata"]["name"] for p in running if p["spec"]["nodeName"] == "doomed-0"}
    # The soft spread puts two of the six on each node.
    assert on_doomed, [p["spec"]["nodeName"] for p in running]

    agents["doomed"].kill()

    def unknown_and_tainted() -> Obj | None:
        # The condition and the taints are two writes, as upstream's two passes.
        node = get_json(kubectl, "node", "doomed-0")
        unknown = condition(node, "Ready").get("status") == "Unknown"
        return node if unknown and node["spec"].get("taints") else None

    node = wait_for(unknown_and_tainted, GRACE_SECONDS + 30, "doomed-0 Unknown and tainted")
    ready = condition(node, "Ready")
    assert (ready["reason"], ready["message"]) == (
        "NodeStatusUnknown",
        "Kubelet stopped posting node status.",
    )
    taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or ()}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in taints
    assert ("node.kubernetes.io/unreachable", "NoSchedule") in taints

    def replaced() -> list[Obj] | None:
        pods = all_running()
        if pods is None or any(p["spec"]["nodeName"] == "doomed-0" for p in pods):
            return None
        return pods

    # Evicted once their 3 s toleration runs out; the ReplicaSet replaces them and the
    # scheduler keeps the replacements off the tainted node.
    moved = wait_for(replaced, 90, "the pods of doomed-0 replaced on the other nodes")
    assert {p["spec"]["nodeName"] for p in moved} == {"steady-0", "steady-1"}
    assert not on_doomed & {p["metadata"]["name"] for p in moved}
    evicted = get_json(
        kubectl, "pods", "-n", "failover", "--field-selector", "spec.nodeName=doomed-0"
    )
    # Their agent is gone, so nothing confirms their end: they stay Terminating, as upstream.
    assert {p["metadata"]["name"] for p in evicted["items"]} == on_doomed
    assert all(p["metadata"].get("deletionTimestamp") for p in evicted["items"])
    out = kubectl("rollout", "status", "deployment/web", "-n", "failover", "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in out


def test_a_job_runs_to_completion(kubectl: Kubectl, agents: dict[str, SimulatedAgent]) -> None:
    kubectl("create", "namespace", "batch")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "count", "namespace": "batch"},
        "spec": {
            "completions": 4,
            "parallelism": 2,
            "template": {
                # The simulated runtime runs the container for a second, then it exits 0.
                "metadata": {"annotations": {"sim.berth.dev/duration": "1"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "count", "image": "busybox", "command": ["true"]}],
                },
            },
        },
    }
    apply(kubectl, job)
    out = kubectl(
        "wait", "--for=condition=Complete", "job/count", "-n", "batch", "--timeout=90s", timeout=100
    )
    assert "condition met" in out
    finished = get_json(kubectl, "job", "count", "-n", "batch")
    assert finished["status"]["succeeded"] == 4
    assert "active" not in finished["status"] or finished["status"]["active"] == 0
    assert finished["status"]["completionTime"]
    pods = get_json(kubectl, "pods", "-n", "batch", "-l", "job-name=count")["items"]
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded"] * 4


def test_deleting_a_namespace_removes_its_contents(
    kubectl: Kubectl, agents: dict[str, SimulatedAgent]
) -> None:
    kubectl("create", "namespace", "doomed-ns")
    apply(
        kubectl,
        {**deployment("app", 3, 300), "metadata": {"name": "app", "namespace": "doomed-ns"}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "doomed-ns"},
            "data": {"mode": "test"},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "app", "namespace": "doomed-ns"},
            "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]},
        },
    )
    wait_for(lambda: len(live_pods(kubectl, "doomed-ns")) == 3, 60, "3 pods")
    kubectl("delete", "namespace", "doomed-ns", "--timeout=120s", timeout=130)
    gone = kubectl("get", "namespace", "doomed-ns", "--ignore-not-found", "-o", "name")
    assert gone.strip() == ""
    for kind in ("deployments", "replicasets", "pods", "configmaps", "services"):
        left = get_json(kubectl, kind, "-A", "--field-selector", "metadata.namespace=doomed-ns")
        assert left["items"] == [], kind
