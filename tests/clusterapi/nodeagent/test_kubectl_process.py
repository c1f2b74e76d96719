"""End to end: a process-runtime node agent joined to a live server, driven by kubectl."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.live import KUBECTL, AgentProcess, Kubectl, LiveServer, apply, wait_for

pytestmark = pytest.mark.e2e

NODE = "proc"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


@pytest.fixture(scope="module")
def agent(live_server_berth: LiveServer, kubectl: Kubectl) -> Iterator[AgentProcess]:
    server = live_server_berth
    options = ("--port", "0", "--data-dir", str(server.data_dir / "node-proc"))
    process = AgentProcess(
        server,
        NODE,
        options=(*options, "--lease-renew-interval", "2"),
        env={"BERTH_BACKOFF_BASE_SECONDS": "0.5"},
    )
    process.start()
    try:
        wait_for(lambda: node_ready(kubectl), 60, "the process node Ready")
        yield process
    finally:
        process.stop()


def node_ready(kubectl: Kubectl) -> bool:
    result = kubectl.run("get", "node", NODE, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    node = json.loads(result.stdout)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": NODE, "containers": list(containers), **spec},
    }


def get_pod(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", "pod", name, "-o", "json")))


def container_status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    statuses = get_pod(kubectl, name).get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def http_server(**extra: Any) -> dict[str, Any]:
    return {
        "name": "web",
        "image": "python:3.12",
        "command": ["sh", "-c", "exec python3 -m http.server $PORT --bind 127.0.0.1"],
        "ports": [{"name": "http", "containerPort": 8000}],
        **extra,
    }


def test_a_deployment_becomes_ready_through_its_probe_and_answers_on_its_host_port(
    agent: object, kubectl: Kubectl
) -> None:
    container = http_server(
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]},
            },
        },
    }
    apply(kubectl, deployment)
    kubectl("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
    obj = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"][0]
    assert obj["status"]["podIP"] == "127.0.0.1"
    ports = next(c for c in obj["status"]["conditions"] if c["type"] == "berth.dev/HostPorts")
    mapping = dict(item.split("=") for item in ports["message"].split(","))
    port = int(mapping["web:http"])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.status == 200
    # The server logs requests on stderr: the probe's and ours.
    logs = kubectl("logs", "deployment/web")
    assert '"GET / HTTP/1.1" 200' in logs
    kubectl("delete", "deployment", "web", "--wait=true", "--timeout=60s", timeout=70)


def test_logs_follow_tail_timestamps_and_previous(agent: object, kubectl: Kubectl) -> None:
    ticker = {
        "name": "ticker",
        "image": "python:3.12",
        "args": [
            "-u",
            "-c",
            "import time\nfor i in range(8):\n print('tick', i)\n time.sleep(0.5)\n"
            "raise SystemExit(1)",
        ],
    }
    apply(kubectl, pod("ticker", ticker))
    wait_for(
        lambda: "running" in container_status(kubectl, "ticker").get("state", {}),
        30,
        "ticker running",
    )
    follow = subprocess.Popen(
        [str(KUBECTL), "--cache-dir", str(kubectl.cache_dir), "logs", "-f", "ticker"],
        env={**os.environ, "KUBECONFIG": str(kubectl.kubeconfig)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        arrivals = []
        for _ in range(8):
            line = follow.stdout.readline()
            if not line:
                break
            arrivals.append((time.monotonic(), line.strip()))
        follow.wait(timeout=20)
    finally:
        if follow.poll() is None:
            follow.kill()
    seen = [line for _t, line in arrivals]
    assert seen == [f"tick {i}" for i in range(8)]
    # Lines came as they were printed (0.5 s apart), not all at once at the end.
    assert arrivals[-1][0] - arrivals[0][0] >= 1.0
    wait_for(
        lambda: container_status(kubectl, "ticker").get("restartCount", 0) >= 1, 30, "a restart"
    )
    previous = kubectl("logs", "ticker", "--previous")
    assert previous.splitlines() == [f"tick {i}" for i in range(8)]
    assert kubectl("logs", "ticker", "--previous", "--tail=2").splitlines() == ["tick 6", "tick 7"]
    stamped = kubectl("logs", "ticker", "--previous", "--timestamps").splitlines()
    assert all(STAMP.match(line) for line in stamped) and stamped[0].endswith(" tick 0")
    wrong = kubectl.run("logs", "ticker", "-c", "nope", check=False)
    assert wrong.returncode != 0 and "container nope is not valid for pod ticker" in wrong.stderr
    kubectl("delete", "pod", "ticker", "--wait=true", "--timeout=60s", timeout=70)


def test_a_failing_liveness_probe_restarts_and_a_crash_backs_off(
    agent: object, kubectl: Kubectl
) -> None:
    liveness = {
        "httpGet": {"path": "/missing", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    crasher = {"name": "crash", "image": "busybox", "args": ["-c", "echo boom; exit 2"]}
    apply(
        kubectl,
        pod("unhealthy", http_server(livenessProbe=liveness), terminationGracePeriodSeconds=2),
        pod("crasher", crasher),
    )
    # Back-offs double from 0.5 s: the table soon shows one for longer than a poll.
    wait_for(lambda: "CrashLoopBackOff" in kubectl("get", "pod", "crasher"), 30, "CrashLoopBackOff")
    status = container_status(kubectl, "crasher")
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] == 2
    assert kubectl("logs", "crasher", "--previous").strip() == "boom"
    wait_for(
        lambda: container_status(kubectl, "unhealthy").get("restartCount", 0) >= 2,
        40,
        "liveness restarts",
    )
    kubectl("delete", "pod", "unhealthy", "crasher", "--wait=true", "--timeout=60s", timeout=70)


def test_a_process_over_its_memory_limit_is_oomkilled(agent: object, kubectl: Kubectl) -> None:
    hog = {
        "name": "hog",
        "image": "python:3.12",
        "args": [
            "-c",
            "import time; x = bytearray(300 << 20); x[::4096] = b'x' * len(x[::4096]); "
            "time.sleep(60)",
        ],
        "resources": {"limits": {"memory": "64Mi"}},
    }
    apply(kubectl, pod("hog", hog, restartPolicy="Never"))
    terminated = wait_for(
        lambda: container_status(kubectl, "hog").get("state", {}).get("terminated"),
        30,
        "the OOM kill",
    )
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
    assert "OOMKilled" in kubectl("get", "pod", "hog")
    kubectl("delete", "pod", "hog", "--wait=true", "--timeout=60s", timeout=70)


def test_deletion_sends_sigterm_then_sigkill_after_the_grace_period(
    agent: object, kubectl: Kubectl
) -> None:
    stubborn = {
        "name": "stubborn",
        "image": "python:3.12",
        "args": [
            "-u",
            "-c",
            "import os, signal, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: print('got TERM'))\n"
            "print('pid', os.getpid())\ntime.sleep(120)",
        ],
    }
    apply(kubectl, pod("stubborn", stubborn, terminationGracePeriodSeconds=3))
    line = wait_for(
        lambda: kubectl.run("logs", "stubborn", check=False).stdout.strip(), 30, "the pid"
    )
    pid = int(line.split()[1])
    assert psutil.pid_exists(pid)
    began = time.monotonic()
    kubectl("delete", "pod", "stubborn", "--wait=true", "--timeout=60s", timeout=70)
    assert 3 <= time.monotonic() - began < 30
    wait_for(lambda: not psutil.pid_exists(pid), 5, "the process to be gone")


def test_init_containers_run_first_and_configmaps_and_secrets_reach_the_process(
    agent: object, kubectl: Kubectl
) -> None:
    kubectl("create", "configmap", "settings", "--from-literal=color=blue")
    kubectl("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
    mounts = [
        {"name": "work", "mountPath": "/work"},
        {"name": "settings", "mountPath": "/etc/settings"},
        {"name": "creds", "mountPath": "/etc/creds"},
    ]
    main = {
        "name": "main",
        "image": "busybox",
        "args": [
            "-c",
            'cat /work/init; echo "$COLOR $PASSWORD"; cat /etc/settings/color; echo; '
            "cat /etc/creds/password; echo",
        ],
        "env": [
            {
                "name": "COLOR",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}},
            },
            {
                "name": "PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
            },
        ],
        "volumeMounts": mounts,
    }
    init = {
        "name": "setup",
        "image": "busybox",
        "args": ["-c", "echo initialized > /work/init; echo set up"],
        "volumeMounts": mounts[:1],
    }
    apply(
        kubectl,
        pod(
            "configured",
            main,
            initContainers=[init],
            restartPolicy="Never",
            volumes=[
                {"name": "work", "emptyDir": {}},
                {"name": "settings", "configMap": {"name": "settings"}},
                {"name": "creds", "secret": {"secretName": "creds"}},
            ],
        ),
    )
    wait_for(
        lambda: get_pod(kubectl, "configured").get("status", {}).get("phase") == "Succeeded",
        30,
        "the pod to succeed",
    )
    assert kubectl("logs", "configured").splitlines() == [
        "initialized",
        "blue s3cret",
        "blue",
        "s3cret",
    ]
    assert kubectl("logs", "configured", "-c", "setup").strip() == "set up"
    previous = kubectl.run("logs", "configured", "--previous", check=False)
    assert 'previous terminated container "main" in pod "configured" not found' in previous.stderr
    kubectl("delete", "pod", "configured", "--wait=true", "--timeout=60s", timeout=70)


def test_logs_of_an_unscheduled_pod_are_refused(agent: object, kubectl: Kubectl) -> None:
    obj = pod("nowhere", {"name": "c", "image": "busybox"})
    obj["spec"]["nodeName"] = ""
    obj["spec"]["nodeSelector"] = {"no-such-label": "x"}
    apply(kubectl, obj)
    result = kubectl.run("logs", "nowhere", check=False)
    assert result.returncode != 0 and "does not have a host assigned" in result.stderr
    kubectl("delete", "pod", "nowhere", "--wait=false")
