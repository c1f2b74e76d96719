"""End to end: a process-runtime agent restarted on the same data dir adopts or cleanly
replaces the processes it left: no orphans, no duplicates (issue 6).

The workload: a Deployment of three long-lived processes, each carrying this module's marker
on its command line, and a pod printing a numbered line per second. Processes are counted by
scanning ``/proc`` for the marker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import AgentProcess, Kubectl, LiveServer, wait_for

pytestmark = pytest.mark.e2e

NODE = "restarts"
MARKER = f"marker-{uuid.uuid4().hex}"
TICKER = f"ticker-{uuid.uuid4().hex}"
REPLICAS = 3


def marked(tag: str) -> set[int]:
    """Pids of the live processes with ``tag`` in their command line."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if tag.encode() not in (entry / "cmdline").read_bytes():
                continue
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            if state not in (b"Z", b"X"):
                found.add(int(entry.name))
    return found


class Node:
    """The node's agent, started again and again on the same name and data dir."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.data_dir = server.data_dir / "node-restarts"
        self.agent: AgentProcess | None = None
        self.starts = 0

    def start(self) -> AgentProcess:
        self.agent = AgentProcess(
            self.server,
            NODE,
            options=(
                *("--port", "0", "--data-dir", str(self.data_dir)),
                *("--lease-renew-interval", "2"),
            ),
            # INFO: the test reads "adopted container" in its log.
            env={"BERTH_BACKOFF_BASE_SECONDS": "0.5", "BERTH_LOG_LEVEL": "info"},
        )
        self.agent.start()
        self.starts += 1
        return self.agent

    def keep_log(self) -> None:
        """Keep the log of the agent that just ended (the next one overwrites it)."""
        assert self.agent is not None
        log = self.server.data_dir / f"agent-{NODE}.log"
        if log.exists():
            log.rename(log.with_name(f"agent-{NODE}.{self.starts}.log"))

    def crash(self) -> None:
        assert self.agent is not None
        self.agent.kill()
        self.keep_log()

    def stop(self) -> None:
        assert self.agent is not None
        self.agent.stop()
        self.keep_log()

    def log(self) -> str:
        path = self.server.data_dir / f"agent-{NODE}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def pods(kubectl: Kubectl, selector: str = "app=sleepers") -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running_and_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or ()
    )
    containers = status.get("containerStatuses") or [{}]
    return status.get("phase") == "Running" and ready and "running" in containers[0]["state"]


def settled(kubectl: Kubectl) -> bool:
    found = pods(kubectl)
    ticker = pods(kubectl, "app=ticker")
    return (
        len(found) == REPLICAS
        and all(running_and_ready(p) for p in [*found, *ticker])
        and len(marked(MARKER)) == REPLICAS
        and len(marked(TICKER)) == 1
    )


def ticks(kubectl: Kubectl) -> list[int]:
    result = kubectl.run("logs", "ticker", check=False)
    if result.returncode != 0:
        return []
    return [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("tick")]


def fresh_ticks(kubectl: Kubectl, after: int) -> list[int]:
    """The ticker's log once it shows a line newer than ``after`` (read through the agent)."""
    found = ticks(kubectl)
    return found if found and found[-1] > after else []


def restart_counts(kubectl: Kubectl) -> list[int]:
    return [
        p["status"]["containerStatuses"][0]["restartCount"]
        for p in [*pods(kubectl), *pods(kubectl, "app=ticker")]
    ]


@pytest.fixture(scope="module")
def node(live_server_berth: LiveServer, kubectl: Kubectl) -> Iterator[Node]:
    node = Node(live_server_berth)
    node.start()
    try:
        wait_for(lambda: node_ready(kubectl), 60, "the node Ready")
        sleeper = {
            "name": "sleeper",
            "image": "python:3.12",
            "command": ["python3", "-c", "import time; time.sleep(10**6)", MARKER],
        }
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "sleepers", "namespace": "default"},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": "sleepers"}},
                "template": {
                    "metadata": {"labels": {"app": "sleepers"}},
                    "spec": {"containers": [sleeper], "terminationGracePeriodSeconds": 5},
                },
            },
        }
        ticker = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "ticker", "namespace": "default", "labels": {"app": "ticker"}},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 5,
                "containers": [
                    {
                        "name": "ticker",
                        "image": "python:3.12",
                        "command": [
                            "python3",
                            "-u",
                            "-c",
                            "import itertools, time\n"
                            "for i in itertools.count():\n print('tick', i)\n time.sleep(1)",
                            TICKER,
                        ],
                    }
                ],
            },
        }
        kubectl(
            "apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in (deployment, ticker))
        )
        kubectl("rollout", "status", "deployment/sleepers", "--timeout=90s", timeout=100)
        wait_for(lambda: settled(kubectl), 60, "the workload running")
        yield node
    finally:
        if node.agent is not None:
            node.agent.stop()
        for pid in marked(MARKER) | marked(TICKER):  # only if a test failed half-way
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def node_ready(kubectl: Kubectl) -> bool:
    result = kubectl.run("get", "node", NODE, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    conditions = json.loads(result.stdout)["status"]["conditions"]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_a_crashed_agent_adopts_its_running_processes(node: Node, kubectl: Kubectl) -> None:
    sleepers, ticker = marked(MARKER), marked(TICKER)
    assert len(sleepers) == REPLICAS and len(ticker) == 1
    before = {p["metadata"]["name"]: p for p in pods(kubectl)}
    counts = restart_counts(kubectl)
    last_tick = wait_for(lambda: ticks(kubectl), 20, "ticks")[-1]

    node.crash()
    time.sleep(2)
    # Orphans now, but alive, and nothing else started.
    assert marked(MARKER) == sleepers and marked(TICKER) == ticker

    node.start()
    wait_for(lambda: node.log().count("adopted container") == REPLICAS + 1, 60, "adoption")
    seen = wait_for(lambda: fresh_ticks(kubectl, last_tick + 2), 60, "new ticks via the new agent")
    # Same processes: none killed, none started twice; same pods, still Running and Ready.
    assert marked(MARKER) == sleepers and marked(TICKER) == ticker
    after = {p["metadata"]["name"]: p for p in pods(kubectl)}
    assert after.keys() == before.keys()
    assert all(running_and_ready(p) for p in after.values())
    for name, pod in after.items():
        old = before[name]["status"]["containerStatuses"][0]
        new = pod["status"]["containerStatuses"][0]
        assert (new["containerID"], new["state"]) == (old["containerID"], old["state"])
    assert restart_counts(kubectl) == counts
    # The ticker's log goes on, every line once, none lost while no agent read it.
    assert seen == list(range(seen[0], seen[-1] + 1))
    time.sleep(2)
    assert marked(MARKER) == sleepers and marked(TICKER) == ticker


def test_pods_deleted_while_the_agent_is_down_lose_their_processes(
    node: Node, kubectl: Kubectl
) -> None:
    sleepers, ticker = marked(MARKER), marked(TICKER)
    lonely_tag = f"lonely-{uuid.uuid4().hex}"
    lonely = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lonely", "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "containers": [
                {
                    "name": "c",
                    "image": "python:3.12",
                    "command": ["python3", "-c", "import time; time.sleep(10**6)", lonely_tag],
                }
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(lonely))
    wait_for(lambda: marked(lonely_tag), 30, "the lonely pod's process")
    victim = pods(kubectl)[0]
    name = victim["metadata"]["name"]
    # Its process: the one whose HOSTNAME is the pod's name.
    victim_pid = next(
        pid
        for pid in sleepers
        if f"HOSTNAME={name}\0".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    )

    node.crash()
    # A graceful delete waits for the agent (the pod stays Terminating meanwhile); a forced
    # one removes the pod at once: the next agent never sees it again.
    kubectl("delete", "pod", name, "--wait=false")
    kubectl("delete", "pod", "lonely", "--force", "--grace-period=0")
    assert victim_pid in marked(MARKER) and marked(lonely_tag)

    node.start()
    wait_for(lambda: not marked(lonely_tag), 60, "the force-deleted pod's process to go")
    wait_for(lambda: victim_pid not in marked(MARKER), 60, "the deleted pod's process to go")
    wait_for(
        lambda: kubectl.run("get", "pod", name, check=False).returncode != 0,
        60,
        "the deleted pod gone",
    )
    wait_for(lambda: settled(kubectl), 90, "the replacement pod running")
    # The others kept their processes; the Deployment's replacement has a new one.
    now = marked(MARKER)
    assert len(now) == REPLICAS
    assert sleepers - {victim_pid} <= now and victim_pid not in now
    assert marked(TICKER) == ticker
    time.sleep(2)
    assert marked(MARKER) == now and not marked(lonely_tag)


def test_a_gracefully_restarted_agent_restarts_its_containers_once(
    node: Node, kubectl: Kubectl
) -> None:
    sleepers = marked(MARKER)
    counts = restart_counts(kubectl)

    node.stop()
    # A stopping agent takes its containers down: nothing runs unwatched.
    assert not marked(MARKER) and not marked(TICKER)

    node.start()
    wait_for(
        lambda: settled(kubectl) and restart_counts(kubectl) == [c + 1 for c in counts],
        90,
        "every container restarted once",
    )
    now = marked(MARKER)
    assert len(now) == REPLICAS and not now & sleepers
    for pod in pods(kubectl):
        last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
        assert last["exitCode"] == 128 + signal.SIGKILL
    time.sleep(2)
    assert marked(MARKER) == now and len(marked(TICKER)) == 1
