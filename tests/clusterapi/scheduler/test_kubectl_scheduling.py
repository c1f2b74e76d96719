"""The scheduler and evictions driven by the real kubectl against a live Berth.

The live server runs the scheduler and the disruption controller on its Celery worker.
There are no node agents: nodes are plain Node objects (their missing heartbeats get them
tainted unreachable, so the test pods tolerate that), and the test reports pods Running and
Ready itself, as the workload tests do. Shown here: a pod too big for every node stays
Pending with upstream's message and is scheduled once a node that fits joins; ``kubectl
drain`` evicts through ``pods/eviction`` and stops where a PodDisruptionBudget says so;
``kubectl uncordon`` makes the node schedulable again.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.live import Kubectl, apply

pytestmark = pytest.mark.e2e

NS = "scheduling-e2e"
Obj = dict[str, Any]
# Nodes without a node agent are soon tainted not-ready / unreachable.
TOLERATIONS = [
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def node(name: str, cpu: str) -> Obj:
    resources = {"cpu": cpu, "memory": "8Gi", "pods": "20"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"capacity": resources, "allocatable": resources},
    }


def pod(name: str, cpu: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name.rsplit("-", 1)[0]}},
        "spec": {
            "containers": [
                {"name": "main", "image": "pause", "resources": {"requests": {"cpu": cpu}}}
            ],
            "tolerations": TOLERATIONS,
            **spec,
        },
    }


def get(kubectl: Kubectl, *args: str) -> Obj:
    result: Obj = json.loads(kubectl("get", *args, "-o", "json"))
    return result


@contextlib.contextmanager
def heartbeat(kubectl: Kubectl, node_name: str) -> Iterator[None]:
    """Report the node Ready and renew its Lease, as its node agent would, so it stays
    healthy (the node lifecycle controller marks the pods of a silent node not ready)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.is_set():
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
            kubectl.run(
                "patch",
                "node",
                node_name,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps({"status": {"conditions": [ready]}}),
                check=False,
            )
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": node_name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node_name, "leaseDurationSeconds": 40, "renewTime": now},
            }
            kubectl.run("apply", "-f", "-", input=json.dumps(lease), check=False)
            stop.wait(3)

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> str:
    kubectl("create", "namespace", NS)
    return NS


def test_a_pod_too_big_waits_with_the_upstream_message_until_a_node_fits(
    kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, node("e2e-small", "1"))
    apply(kubectl, pod("huge-0", "3"))

    def message() -> str:
        for condition in (
            get(kubectl, "pod", "huge-0", "-n", NS).get("status", {}).get("conditions") or ()
        ):
            if condition["type"] == "PodScheduled" and condition["status"] == "False":
                return str(condition.get("message", ""))
        return ""

    wait_for(lambda: "Insufficient cpu" in message(), "the FailedScheduling condition")
    assert message().startswith("0/") and "nodes are available:" in message()
    assert "Insufficient cpu." in message()
    events = kubectl(
        "get", "events", "-n", NS, "--field-selector", "reason=FailedScheduling", "-o", "json"
    )
    assert "nodes are available" in events

    apply(kubectl, node("e2e-large", "8"))
    wait_for(
        lambda: get(kubectl, "pod", "huge-0", "-n", NS)["spec"].get("nodeName") == "e2e-large",
        "the pod to be scheduled on the new node",
    )
    wide = kubectl("get", "pod", "huge-0", "-n", NS, "-o", "wide")
    assert "e2e-large" in wide


def test_drain_evicts_but_respects_the_disruption_budget(kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, node("e2e-drain", "4"))
    with heartbeat(kubectl, "e2e-drain"):
        drain_with_budget(kubectl)


def drain_with_budget(kubectl: Kubectl) -> None:
    apply(kubectl, *(pod(f"web-{i}", "100m", nodeName="e2e-drain") for i in range(3)))

    def report_ready() -> None:  # the node agent's part: Running and Ready
        for i in range(3):
            kubectl(
                "patch",
                "pod",
                f"web-{i}",
                "-n",
                NS,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps(
                    {
                        "status": {
                            "phase": "Running",
                            "conditions": [{"type": "Ready", "status": "True"}],
                        }
                    }
                ),
            )

    report_ready()
    kubectl("create", "pdb", "web", "-n", NS, "--selector=app=web", "--min-available=2")

    def one_allowed() -> bool:
        if get(kubectl, "pdb", "web", "-n", NS).get("status", {}).get("disruptionsAllowed") == 1:
            return True
        report_ready()  # in case the node was seen silent before its first heartbeat
        return False

    wait_for(one_allowed, "the disruption controller to allow one disruption")

    drain = kubectl.run(
        "drain",
        "e2e-drain",
        "--force",
        "--ignore-daemonsets",
        "--timeout=15s",
        check=False,
        timeout=120,
    )
    output = drain.stdout + drain.stderr
    assert drain.returncode != 0, output  # two pods must stay: the budget forbids more
    assert "disruption budget" in output, output

    pods = get(kubectl, "pods", "-n", NS, "-l", "app=web")["items"]
    evicted = [p for p in pods if p["metadata"].get("deletionTimestamp")]
    assert len(evicted) == 1
    assert get(kubectl, "node", "e2e-drain")["spec"].get("unschedulable") is True

    kubectl("uncordon", "e2e-drain")
    assert not get(kubectl, "node", "e2e-drain")["spec"].get("unschedulable")
