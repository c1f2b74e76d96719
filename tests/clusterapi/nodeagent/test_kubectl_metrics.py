"""End to end: ``kubectl top`` against a live server fed by a process agent and simulated nodes.

The agents sample every second (``BERTH_METRICS_INTERVAL_SECONDS=1``), so figures appear
within a few seconds of a pod starting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.live import AgentProcess, Kubectl, LiveServer, SimulatedAgent, wait_for

pytestmark = pytest.mark.e2e

NODE = "topnode"
BUSY_POD = """
apiVersion: v1
kind: Pod
metadata: {name: busy, labels: {app: busy}}
spec:
  nodeName: topnode
  containers:
    - name: spin
      image: python
      command: ["python3", "-c", "while True: pass"]
"""
SIM_POD = """
apiVersion: v1
kind: Pod
metadata: {name: simulated}
spec:
  nodeName: simtop-0
  containers:
    - name: app
      image: nginx
      resources: {requests: {cpu: 500m, memory: 256Mi}}
"""


@pytest.fixture(scope="module")
def live_server_berth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server whose node agents sample every second (they inherit its env)."""
    server = LiveServer(
        tmp_path_factory.mktemp("berth"), env={"BERTH_METRICS_INTERVAL_SECONDS": "1"}
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def process_agent(live_server_berth: LiveServer, kubectl: Kubectl) -> Iterator[None]:
    server = live_server_berth
    options = ("--port", "0", "--data-dir", str(server.data_dir / "node-top"))
    process = AgentProcess(server, NODE, options=options).start()
    try:
        wait_for(
            lambda: kubectl.run("get", "node", NODE, check=False).returncode == 0,
            60,
            "the process node",
        )
        yield
    finally:
        process.stop()


@pytest.fixture(scope="module")
def simulated(live_server_berth: LiveServer) -> Iterator[SimulatedAgent]:
    agent = SimulatedAgent(live_server_berth, nodes=3, name="simtop").start()
    try:
        yield agent
    finally:
        agent.stop()


def top(kubectl: Kubectl, *args: str) -> list[list[str]]:
    result = kubectl.run("top", *args, "--no-headers", check=False)
    if result.returncode != 0:
        return []
    return [line.split() for line in result.stdout.splitlines() if line.strip()]


def millicores(text: str) -> int:
    return int(text[:-1]) if text.endswith("m") else int(text) * 1000


def test_top_pod_shows_a_busy_container_using_cpu(
    process_agent: None, kubectl: Kubectl, live_server_berth: LiveServer
) -> None:
    kubectl("apply", "-f", "-", input=BUSY_POD)

    def busy() -> list[str] | None:
        rows = [r for r in top(kubectl, "pod", "busy") if r[0] == "busy"]
        return rows[0] if rows and millicores(rows[0][1]) >= 100 else None

    row = wait_for(busy, 60, "kubectl top pod busy to show CPU")
    assert row[2].endswith("Mi") and int(row[2][:-2]) > 0
    containers = top(kubectl, "pod", "busy", "--containers")
    assert containers and containers[0][:2] == ["busy", "spin"]
    selected = top(kubectl, "pods", "-l", "app=busy")
    assert [r[0] for r in selected] == ["busy"]
    # The history behind the dashboard's charts has the pod's recent points.
    raw = kubectl(
        "get", "--raw", "/apis/metrics.berth.dev/v1/history/namespaces/default/pods/busy?step=0"
    )
    points = json.loads(raw)["points"]
    assert points and max(p["cpu"] for p in points) > 100_000_000


def test_top_node_lists_the_process_node_and_simulated_nodes(
    process_agent: None, simulated: SimulatedAgent, kubectl: Kubectl
) -> None:
    kubectl("apply", "-f", "-", input=SIM_POD)

    def nodes() -> dict[str, list[str]] | None:
        # kubectl lists every Node, with <unknown> until its metrics arrive.
        rows = {r[0]: r for r in top(kubectl, "nodes") if "<unknown>" not in r}
        wanted = {NODE, "simtop-0", "simtop-1", "simtop-2"}
        return rows if wanted <= set(rows) else None

    rows = wait_for(nodes, 60, "kubectl top nodes to list every node")
    # NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
    for name in (NODE, "simtop-0", "simtop-1"):
        assert millicores(rows[name][1]) > 0, rows[name]
        assert rows[name][3].endswith(("Ki", "Mi", "Gi")), rows[name]

    def simulated_pod() -> list[str] | None:
        found = [r for r in top(kubectl, "pod", "simulated") if r[0] == "simulated"]
        return found[0] if found else None

    row = wait_for(simulated_pod, 30, "the simulated pod's metrics")
    # 40 % of the 500m request, with at most 25 % jitter.
    assert 100 <= millicores(row[1]) <= 300, row
