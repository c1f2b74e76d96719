"""``manage.py up`` starts a node agent for its own machine: a fresh instance runs pods."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.live import Kubectl, LiveServer, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live_server_berth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("berth"))
    server.env = {"BERTH_LOCAL_AGENT": "process"}
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_up_runs_a_local_process_agent_that_runs_pods(
    live_server_berth: LiveServer, kubectl: Kubectl
) -> None:
    node_name = socket.gethostname().lower()

    def node_ready() -> bool:
        found = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
        return any(
            n["metadata"]["name"] == node_name
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n["status"].get("conditions", ())
            )
            for n in found
        )

    wait_for(node_ready, 90, f"node {node_name} Ready")
    kubectl(
        "run",
        "hello",
        "--image=python:3.11",
        "--restart=Never",
        "--command",
        "--",
        "python3",
        "-c",
        "print('hello from berth')",
    )

    def finished() -> bool:
        pod = json.loads(kubectl("get", "pod", "hello", "-o", "json"))
        return pod.get("status", {}).get("phase") == "Succeeded"

    wait_for(finished, 90, "the pod to succeed")
    pod = json.loads(kubectl("get", "pod", "hello", "-o", "json"))
    assert pod["spec"]["nodeName"] == node_name
    assert "hello from berth" in kubectl("logs", "hello")
    # It joined with a bootstrap token minted for it, which expires within minutes.
    secrets = json.loads(kubectl("get", "secrets", "-n", "kube-system", "-o", "json"))["items"]
    joined = [s for s in secrets if s["metadata"]["name"].startswith("bootstrap-token-")]
    assert joined and all("expiration" in s["data"] for s in joined)
