"""Deployments and ReplicationControllers driven by the real kubectl against a live Berth.

The live server runs the control loops on its Celery worker. There are no node agents here,
so the test plays their part: it reports each pod Running and Ready through the pods' status
subresource (``kubectl patch --subresource=status``), which is all the workload controllers
look at. What is shown is that kubectl's own readers agree with the controllers:
``rollout status``, ``wait --for=condition=Available``, ``rollout history``, ``rollout
undo``, ``scale``, and ``delete --cascade=foreground``.
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

NS = "workloads-e2e"
Obj = dict[str, Any]


def get_json(kubectl: Kubectl, *args: str) -> Obj:
    result: Obj = json.loads(kubectl("get", "-n", NS, *args, "-o", "json"))
    return result


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def ready_pods(kubectl: Kubectl, selector: str) -> None:
    """Act as the node agents: report every active, not-ready pod Running and Ready."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = json.dumps(
        {
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": stamp}],
            }
        }
    )
    for pod in get_json(kubectl, "pods", "-l", selector)["items"]:
        meta, status = pod["metadata"], pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or ()
        )
        if ready or meta.get("deletionTimestamp"):
            continue
        kubectl.run(
            "patch",
            "pod",
            meta["name"],
            "-n",
            NS,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
            check=False,
        )


def while_ready(kubectl: Kubectl, selector: str, *args: str, timeout: float = 180) -> str:
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


def images(kubectl: Kubectl, selector: str) -> list[str]:
    return sorted(
        p["spec"]["containers"][0]["image"]
        for p in get_json(kubectl, "pods", "-l", selector)["items"]
        if not p["metadata"].get("deletionTimestamp")
    )


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> str:
    kubectl("create", "namespace", NS)
    return NS


def test_a_deployment_rolls_out_updates_and_rolls_back(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "deployment", "web", "-n", NS, "--image=nginx:1.25", "--replicas=3")
    out = while_ready(
        kubectl, "app=web", "rollout", "status", "deployment/web", "-n", NS, "--timeout=170s"
    )
    assert 'deployment "web" successfully rolled out' in out
    kubectl("wait", "-n", NS, "--for=condition=Available", "deployment/web", "--timeout=30s")
    assert images(kubectl, "app=web") == ["nginx:1.25"] * 3

    kubectl("set", "image", "deployment/web", "-n", NS, "nginx=nginx:1.26")
    out = while_ready(
        kubectl, "app=web", "rollout", "status", "deployment/web", "-n", NS, "--timeout=170s"
    )
    assert 'deployment "web" successfully rolled out' in out
    assert images(kubectl, "app=web") == ["nginx:1.26"] * 3
    history = kubectl("rollout", "history", "deployment/web", "-n", NS)
    assert "REVISION" in history and "1 " in history and "2 " in history

    kubectl("rollout", "undo", "deployment/web", "-n", NS)
    while_ready(
        kubectl, "app=web", "rollout", "status", "deployment/web", "-n", NS, "--timeout=170s"
    )
    assert images(kubectl, "app=web") == ["nginx:1.25"] * 3
    replicasets = get_json(kubectl, "replicasets", "-l", "app=web")["items"]
    assert len(replicasets) == 2
    revisions = sorted(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in replicasets
    )
    assert revisions == ["2", "3"]
    deployment = get_json(kubectl, "deployment", "web")
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"]


def test_scaling_to_zero_and_back(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "deployment", "scaled", "-n", NS, "--image=nginx:1.25", "--replicas=2")
    while_ready(kubectl, "app=scaled", "rollout", "status", "deployment/scaled", "-n", NS)
    kubectl("scale", "deployment/scaled", "-n", NS, "--replicas=0")
    wait_for(lambda: images(kubectl, "app=scaled") == [], "the pods to go")
    kubectl("scale", "deployment/scaled", "-n", NS, "--replicas=2")
    while_ready(kubectl, "app=scaled", "rollout", "status", "deployment/scaled", "-n", NS)
    assert images(kubectl, "app=scaled") == ["nginx:1.25"] * 2


def test_foreground_deletion_of_a_deployment(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "deployment", "doomed", "-n", NS, "--image=nginx:1.25", "--replicas=2")
    wait_for(lambda: len(images(kubectl, "app=doomed")) == 2, "the pods")
    kubectl("delete", "deployment", "doomed", "-n", NS, "--cascade=foreground", "--timeout=120s")
    assert get_json(kubectl, "replicasets", "-l", "app=doomed")["items"] == []
    assert get_json(kubectl, "pods", "-l", "app=doomed")["items"] == []


def test_a_replication_controller_keeps_its_replicas(kubectl: Kubectl, namespace: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "legacy", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"app": "legacy"},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
            },
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    wait_for(lambda: len(images(kubectl, "app=legacy")) == 2, "two pods")
    victim = get_json(kubectl, "pods", "-l", "app=legacy")["items"][0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "-n", NS)
    wait_for(
        lambda: (
            len(images(kubectl, "app=legacy")) == 2
            and victim not in kubectl("get", "pods", "-n", NS, "-o", "name")
        ),
        "a replacement pod",
    )
    rc = get_json(kubectl, "rc", "legacy")
    assert rc["status"]["replicas"] == 2
