"""The simulated runtime and the pod status the agent derives from it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from clusterapi.nodeagent import status
from clusterapi.nodeagent.runtimes.simulated import SimulatedOptions, SimulatedRuntime

Obj = dict[str, Any]


def pod(policy: str = "Always", **annotations: str) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u" * 36, "annotations": annotations},
        "spec": {
            "restartPolicy": policy,
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}],
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def run(runtime: SimulatedRuntime, obj: Obj, seconds: float = 0.5) -> list[Obj]:
    """Run a pod for ``seconds`` (or until it finishes); the statuses reported, in order."""
    reports: list[Obj] = []

    async def report(init: list[Obj], containers: list[Obj]) -> None:
        reports.append(
            status.pod_status(
                obj,
                init,
                containers,
                host_ip="172.16.0.1",
                pod_ip="10.244.0.5",
                start_time="2030-01-01T00:00:00Z",
            )
        )

    async def main() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.run_pod(obj, report), seconds)

    asyncio.run(main())
    return reports


def conditions(reported: Obj) -> dict[str, str]:
    return {c["type"]: c["status"] for c in reported["conditions"]}


def test_pending_then_running_and_ready() -> None:
    reports = run(SimulatedRuntime(SimulatedOptions(start_delay=0.01)), pod())
    first, last = reports[0], reports[-1]
    assert first["phase"] == "Pending"
    assert first["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert conditions(first)["Ready"] == "False"
    assert last["phase"] == "Running"
    assert conditions(last) == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    running = last["containerStatuses"][0]
    assert running["ready"] and running["started"] and running["restartCount"] == 0
    assert "startedAt" in running["state"]["running"]
    assert last["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert last["podIP"] == "10.244.0.5" and last["hostIP"] == "172.16.0.1"
    assert last["startTime"] and last["qosClass"] == "BestEffort"


@pytest.mark.parametrize("policy", ["Never", "OnFailure"])
def test_a_pod_with_a_duration_succeeds(policy: str) -> None:
    runtime = SimulatedRuntime(SimulatedOptions(start_delay=0.0, pod_duration=0.05))
    last = run(runtime, pod(policy))[-1]
    assert last["phase"] == "Succeeded"
    assert last["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert conditions(last)["Ready"] == "False"
    assert next(c for c in last["conditions"] if c["type"] == "Ready")["reason"] == "PodCompleted"


def test_always_pods_ignore_the_duration() -> None:
    runtime = SimulatedRuntime(SimulatedOptions(start_delay=0.0, pod_duration=0.05))
    assert run(runtime, pod("Always"), 0.3)[-1]["phase"] == "Running"


def test_injected_failure_fails_a_never_pod() -> None:
    last = run(SimulatedRuntime(SimulatedOptions(start_delay=0.0, failure_rate=1.0)), pod("Never"))[
        -1
    ]
    assert last["phase"] == "Failed"
    terminated = last["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1 and terminated["reason"] == "Error"


def test_failing_always_pod_backs_off_and_restarts() -> None:
    runtime = SimulatedRuntime(SimulatedOptions(start_delay=0.0, backoff_base=0.001))
    reports = run(runtime, pod("Always", **{"sim.berth.dev/fail": "true"}), 0.3)
    last = reports[-1]
    assert last["phase"] == "Running"
    container = last["containerStatuses"][0]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["lastState"]["terminated"]["reason"] == "Error"
    assert container["restartCount"] >= 1


def test_phase_rules() -> None:
    done = {"state": {"terminated": {"exitCode": 0}}}
    failed = {"state": {"terminated": {"exitCode": 2}}}
    running: Obj = {"state": {"running": {}}}
    assert status.pod_phase("Never", [], [done, failed]) == "Failed"
    assert status.pod_phase("OnFailure", [], [done, failed]) == "Running"
    assert status.pod_phase("Always", [], [done]) == "Running"
    assert status.pod_phase("Never", [], [done, running]) == "Running"
    assert status.pod_phase("Never", [failed], [running]) == "Failed"
    assert status.pod_phase("Always", [{"state": {"waiting": {}}}], [running]) == "Pending"


def test_the_agent_sends_only_the_newest_status_of_a_pod_that_starts_at_once() -> None:
    """As the kubelet's status manager: ContainerCreating replaced by Running before it was
    sent costs one patch, not two; a report arriving during a patch is sent after it."""
    from clusterapi.nodeagent.agent import AgentOptions, NodeAgent, NodeState, PodWorker

    agent = NodeAgent(
        AgentOptions(server="https://127.0.0.1:1", token="t", names=["n1"]),
        SimulatedRuntime(SimulatedOptions(start_delay=0)),
    )
    sent: list[Obj] = []
    release = asyncio.Event()

    async def request(method: str, path: str, token: str, body: Any = None, **_: Any) -> Obj:
        sent.append(body["status"])
        if len(sent) == 1:
            await release.wait()  # the first patch is in flight while the pod changes twice
        return {}

    agent.request = request  # type: ignore[method-assign]
    node = NodeState(name="n1", index=0, token="t", host_ip="172.16.0.1")
    worker = PodWorker(pod=pod(), pod_ip="10.244.0.5", start_time="2030-01-01T00:00:00Z")

    def phase(reason: str) -> list[Obj]:
        return [
            {
                "name": "web",
                "ready": False,
                "restartCount": 0,
                "image": "nginx",
                "imageID": "",
                "started": False,
                "state": {"waiting": {"reason": reason}},
            }
        ]

    async def main() -> None:
        await agent._report_pod(node, worker, [], phase("ContainerCreating"))
        await agent._report_pod(node, worker, [], phase("Pulling"))
        await asyncio.sleep(0.05)
        await agent._report_pod(node, worker, [], phase("Waiting"))
        await agent._report_pod(node, worker, [], phase("Starting"))
        release.set()
        assert worker.sender is not None
        await asyncio.wait_for(worker.sender, 5)

    asyncio.run(main())
    reasons = [s["containerStatuses"][0]["state"]["waiting"]["reason"] for s in sent]
    assert reasons == ["Pulling", "Starting"]
    assert worker.reported == sent[-1]
