"""End to end: a simulated node agent joins a live server with a bootstrap token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.live import ROOT, Kubectl, LiveServer, wait_for

pytestmark = pytest.mark.e2e

GRACE_SECONDS = 6


@pytest.fixture(scope="module")
def live_server_berth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server with a shortened node-monitor grace period."""
    server = LiveServer(tmp_path_factory.mktemp("berth"))
    server.env = {"BERTH_NODE_MONITOR_GRACE_SECONDS": str(GRACE_SECONDS)}
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ready_of(node: dict[str, object]) -> str:
    for condition in node["status"]["conditions"]:  # type: ignore[index]
        if condition["type"] == "Ready":
            return str(condition["status"])
    return ""


def test_simulated_nodes_join_run_a_pod_and_go_unknown_when_stopped(
    live_server_berth: LiveServer, kubectl: Kubectl
) -> None:
    server = live_server_berth
    token = server.manage("token", "create", "--description", "e2e").strip().splitlines()[-1]
    log = open(server.data_dir / "agent.log", "wb")  # noqa: SIM115
    agent = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "nodeagent",
            "--server",
            server.url,
            "--token",
            token,
            "--name",
            "sim",
            "--runtime",
            "simulated",
            "--nodes",
            "3",
            "--ca-file",
            str(server.ca_file),
            "--lease-renew-interval",
            "1",
            "--pod-start-delay",
            "0.2",
        ],
        cwd=ROOT,
        env=server.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def nodes() -> list[dict[str, object]]:
            return list(json.loads(kubectl("get", "nodes", "-o", "json"))["items"])

        def three_ready() -> bool:
            found = [n for n in nodes() if str(n["metadata"]["name"]).startswith("sim-")]  # type: ignore[index]
            return len(found) == 3 and all(ready_of(n) == "True" for n in found)

        wait_for(three_ready, 60, "3 Ready nodes")
        table = kubectl("get", "nodes")
        for i in range(3):
            assert f"sim-{i}" in table
        assert "Ready" in table
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "sim-1", "containers": [{"name": "web", "image": "nginx"}]},
        }
        kubectl("apply", "-f", "-", input=json.dumps(pod))

        def running() -> bool:
            obj = json.loads(kubectl("get", "pod", "web", "-o", "json"))
            status = obj.get("status") or {}
            ready = {c["type"]: c["status"] for c in status.get("conditions") or ()}
            return status.get("phase") == "Running" and ready.get("Ready") == "True"

        wait_for(running, 30, "the pod Running and Ready")
        obj = json.loads(kubectl("get", "pod", "web", "-o", "json"))
        assert obj["status"]["podIP"]
        assert obj["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
        kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=10s")
        # Deleting it: the agent stops and removes it.
        kubectl("delete", "pod", "web", "--wait=true", "--timeout=30s")
        # A stable period: no node goes NotReady while the agent runs.
        time.sleep(GRACE_SECONDS + 2)
        assert three_ready()
    finally:
        agent.terminate()
        agent.wait(timeout=20)
    wait_for(
        lambda: all(
            ready_of(n) == "Unknown"
            for n in nodes()
            if str(n["metadata"]["name"]).startswith("sim-")  # type: ignore[index]
        ),
        GRACE_SECONDS + 60,
        "the nodes to go Unknown",
    )
    node = json.loads(kubectl("get", "node", "sim-0", "-o", "json"))
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or ()}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in taints
    assert "NotReady" in kubectl("get", "nodes")
