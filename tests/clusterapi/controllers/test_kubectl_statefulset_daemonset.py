"""StatefulSets and DaemonSets driven by the real kubectl against a live Berth.

The live server runs the controllers and the scheduler on its Celery worker; there are no node
agents, so the test plays them: it reports pods Running and Ready through the status
subresource, and registers Nodes itself (``kubectl apply`` of Node objects, a Ready condition
with a fresh heartbeat through ``--subresource=status``). What is shown is that kubectl's own
readers agree with the controllers: ``rollout status`` for both kinds, ``rollout history`` and
``rollout undo`` of a StatefulSet (which patch the template back from a ControllerRevision).

The StatefulSet test runs first and with no Node registered, so its pods stay unbound and are
deleted at once during its rolling update (a bound pod would wait for a kubelet).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.live import Kubectl

pytestmark = pytest.mark.e2e

NS = "stateful-e2e"
Obj = dict[str, Any]


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_json(kubectl: Kubectl, *args: str) -> Obj:
    result: Obj = json.loads(kubectl("get", "-n", NS, *args, "-o", "json"))
    return result


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def live_pods(kubectl: Kubectl, selector: str) -> list[Obj]:
    return [
        p
        for p in get_json(kubectl, "pods", "-l", selector)["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]


def ready_pods(kubectl: Kubectl, selector: str, only: str = "") -> None:
    """Act as the node agents: report active, not-ready pods (or just ``only``) Ready."""
    patch = json.dumps(
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now_stamp()}
                ],
            }
        }
    )
    for pod in live_pods(kubectl, selector):
        name = pod["metadata"]["name"]
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or ()
        )
        if ready or (only and name != only):
            continue
        kubectl.run(
            "patch", "pod", name, "-n", NS, "--subresource=status", "--type=merge", "-p", patch,
            check=False,
        )  # fmt: skip


def while_ready(kubectl: Kubectl, selector: str, *args: str, timeout: float = 150) -> str:
    """Run a waiting kubectl command while pods are being made ready; returns its output."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["result"] = kubectl.run(*args, check=False, timeout=timeout)

    waiter = threading.Thread(target=run)
    waiter.start()
    while waiter.is_alive():
        ready_pods(kubectl, selector)
        waiter.join(0.5)
    result = outcome["result"]
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
    return str(result.stdout)


def images(kubectl: Kubectl, selector: str) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
        for p in live_pods(kubectl, selector)
    }


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> str:
    kubectl("create", "namespace", NS)
    return NS


def test_a_statefulset_starts_in_order_rolls_out_and_rolls_back(
    kubectl: Kubectl, namespace: str
) -> None:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    # OrderedReady: each pod appears only once its predecessor is Running and Ready.
    for ordinal in range(3):
        name = f"web-{ordinal}"

        def appeared(name: str = name) -> bool:
            return name in images(kubectl, "app=web")

        wait_for(appeared, name)
        time.sleep(2)
        assert sorted(images(kubectl, "app=web")) == [f"web-{i}" for i in range(ordinal + 1)]
        ready_pods(kubectl, "app=web", only=name)
    pod = get_json(kubectl, "pod", "web-1")
    assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "web"
    assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    out = while_ready(kubectl, "app=web", "rollout", "status", "statefulset/web", "-n", NS)
    assert "partitioned roll out complete: 3 new pods have been updated" in out

    kubectl("set", "image", "statefulset/web", "-n", NS, "web=nginx:1.26")
    out = while_ready(kubectl, "app=web", "rollout", "status", "statefulset/web", "-n", NS)
    assert "roll out complete" in out
    assert images(kubectl, "app=web") == {f"web-{i}": "nginx:1.26" for i in range(3)}
    sts = get_json(kubectl, "statefulset", "web")
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    history = kubectl("rollout", "history", "statefulset/web", "-n", NS)
    assert "REVISION" in history and "1 " in history and "2 " in history
    detail = kubectl("rollout", "history", "statefulset/web", "-n", NS, "--revision=1")
    assert "nginx:1.25" in detail

    out = kubectl("rollout", "undo", "statefulset/web", "-n", NS)
    assert "rolled back" in out
    while_ready(kubectl, "app=web", "rollout", "status", "statefulset/web", "-n", NS)
    wait_for(
        lambda: images(kubectl, "app=web") == {f"web-{i}": "nginx:1.25" for i in range(3)},
        "the rollback",
    )
    revisions = get_json(kubectl, "controllerrevisions", "-l", "app=web")["items"]
    assert sorted(r["revision"] for r in revisions) == [2, 3]


def register_node(kubectl: Kubectl, name: str) -> None:
    """Register a Node as its agent would: the object, then a Ready status with a heartbeat."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    heartbeat(kubectl, name)


def heartbeat(kubectl: Kubectl, name: str) -> None:
    stamp = now_stamp()
    status = {
        "status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
        }
    }
    kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))


def pods_by_node(kubectl: Kubectl) -> dict[str, int]:
    """How many live agent pods target each node (by the injected node affinity)."""
    counts: dict[str, int] = {}
    for pod in live_pods(kubectl, "app=agent"):
        terms = pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        target = terms[0]["matchFields"][0]["values"][0]
        counts[target] = counts.get(target, 0) + 1
    return counts


def test_a_daemonset_follows_nodes_joining_and_leaving(kubectl: Kubectl, namespace: str) -> None:
    register_node(kubectl, "e2e-node-a")
    register_node(kubectl, "e2e-node-b")
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "fluentd:1"}]},
            },
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    wait_for(lambda: pods_by_node(kubectl) == {"e2e-node-a": 1, "e2e-node-b": 1}, "a pod per node")
    out = while_ready(kubectl, "app=agent", "rollout", "status", "ds/agent", "-n", NS)
    assert 'daemon set "agent" successfully rolled out' in out

    register_node(kubectl, "e2e-node-c")
    wait_for(lambda: pods_by_node(kubectl).get("e2e-node-c") == 1, "a pod on the new node")
    for name in ("e2e-node-a", "e2e-node-b"):
        heartbeat(kubectl, name)
    out = while_ready(kubectl, "app=agent", "rollout", "status", "ds/agent", "-n", NS)
    assert 'daemon set "agent" successfully rolled out' in out
    assert get_json(kubectl, "ds", "agent")["status"]["desiredNumberScheduled"] == 3

    kubectl("delete", "node", "e2e-node-a")
    wait_for(lambda: "e2e-node-a" not in pods_by_node(kubectl), "the pod of the node that left")
    wait_for(
        lambda: get_json(kubectl, "ds", "agent")["status"]["desiredNumberScheduled"] == 2,
        "the status to follow",
    )
    assert pods_by_node(kubectl) == {"e2e-node-b": 1, "e2e-node-c": 1}
    for name in ("e2e-node-b", "e2e-node-c"):
        kubectl("delete", "node", name)
