"""End to end: ``kubectl exec``, ``attach`` and ``port-forward`` through the API server to a
process-runtime node agent."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusterapi.nodeagent.test_kubectl_process import apply, pod, wait_for
from tests.live import KUBECTL, AgentProcess, Kubectl, LiveServer

pytestmark = pytest.mark.e2e

NODE = "proc"


@pytest.fixture(scope="module")
def agent(live_server_berth: LiveServer, kubectl: Kubectl) -> Iterator[AgentProcess]:
    server = live_server_berth
    options = ("--port", "0", "--data-dir", str(server.data_dir / "node-proc"))
    process = AgentProcess(server, NODE, options=(*options, "--lease-renew-interval", "2"))
    process.start()
    try:
        wait_for(lambda: _node_ready(kubectl), 60, "the process node Ready")
        yield process
    finally:
        process.stop()


def _node_ready(kubectl: Kubectl) -> bool:
    result = kubectl.run("get", "node", NODE, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    node = json.loads(result.stdout)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def _running(kubectl: Kubectl, name: str) -> bool:
    result = kubectl.run("get", "pod", name, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    statuses = json.loads(result.stdout).get("status", {}).get("containerStatuses") or [{}]
    return all("running" in (s.get("state") or {}) for s in statuses)


@pytest.fixture(scope="module")
def shell(agent: object, kubectl: Kubectl) -> str:
    """A long-running pod with env, a working directory and a volume."""
    container = {
        "name": "main",
        "image": "busybox",
        "command": ["sh", "-c", "sleep 3600"],
        "env": [{"name": "GREETING", "value": "hello from berth"}],
        "workingDir": "/work",
        "volumeMounts": [{"name": "scratch", "mountPath": "/data"}],
    }
    apply(kubectl, pod("shell", container, volumes=[{"name": "scratch", "emptyDir": {}}]))
    wait_for(lambda: _running(kubectl, "shell"), 60, "pod shell running")
    return "shell"


def test_exec_sees_the_containers_environment_and_working_directory(
    shell: str, kubectl: Kubectl
) -> None:
    assert kubectl("exec", shell, "--", "printenv", "GREETING") == "hello from berth\n"
    environ = kubectl("exec", shell, "--", "cat", "/proc/self/environ")
    assert "GREETING=hello from berth" in environ.split("\0")
    assert "HOSTNAME=shell" in environ.split("\0")
    cwd = kubectl("exec", shell, "--", "sh", "-c", "pwd").strip()
    assert cwd.endswith("/work")
    # Mount paths in the command are the volume's directory, as in the container's own.
    kubectl("exec", shell, "--", "sh", "-c", "echo kept > /data/file")
    assert kubectl("exec", shell, "--", "cat", "/data/file") == "kept\n"


def test_exec_separates_stdout_and_stderr(shell: str, kubectl: Kubectl) -> None:
    result = kubectl.run("exec", shell, "--", "sh", "-c", "echo out; echo err >&2")
    assert result.stdout == "out\n"
    assert "err\n" in result.stderr


def test_exec_with_stdin_echoes_it(shell: str, kubectl: Kubectl) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    assert kubectl("exec", "-i", shell, "--", "cat", input=text) == text


def test_a_failing_command_gives_its_exit_code(shell: str, kubectl: Kubectl) -> None:
    result = kubectl.run("exec", shell, "--", "sh", "-c", "exit 3", check=False)
    assert result.returncode == 3
    assert "command terminated with exit code 3" in result.stderr


def test_a_missing_command_exits_127(shell: str, kubectl: Kubectl) -> None:
    result = kubectl.run("exec", shell, "--", "no-such-program-here", check=False)
    assert result.returncode == 127, result.stderr
    assert 'exec: "no-such-program-here": executable file not found in $PATH' in result.stderr


def test_exec_refuses_an_unknown_container(shell: str, kubectl: Kubectl) -> None:
    result = kubectl.run("exec", shell, "-c", "nope", "--", "true", check=False)
    assert result.returncode != 0
    assert "container nope is not valid for pod shell" in result.stderr


def test_exec_needs_create_on_pods_exec(
    shell: str, kubectl: Kubectl, live_server_berth: LiveServer, tmp_path: Path
) -> None:
    kubectl("create", "role", "exec-get", "--verb=get", "--resource=pods,pods/exec")
    kubectl("create", "rolebinding", "exec-get", "--role=exec-get", "--user=viewer")
    config = tmp_path / "viewer.kubeconfig"
    config.write_text(live_server_berth.manage("kubeconfig", "--user", "viewer"))
    viewer = Kubectl(config, tmp_path / "cache")
    result = viewer.run("exec", shell, "--", "true", check=False)
    assert result.returncode != 0
    assert (
        'pods "shell" is forbidden: User "viewer" cannot create resource "pods/exec" '
        'in API group "" in the namespace "default"'
    ) in result.stderr


def _read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_exec_with_a_terminal(shell: str, kubectl: Kubectl) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal of its own
        os.environ["KUBECONFIG"] = str(kubectl.kubeconfig)
        os.execv(  # noqa: S606
            str(KUBECTL),
            [
                str(KUBECTL),
                "--cache-dir",
                str(kubectl.cache_dir),
                "exec",
                "-it",
                shell,
                "--",
                "sh",
                "-c",
                "stty size; tty; read answer; echo got-$answer; exit 4",
            ],
        )
    try:
        seen = _read_until(fd, b"/dev/pts/", 30)
        assert b"/dev/pts/" in seen, seen
        os.write(fd, b"yes\r")
        seen += _read_until(fd, b"got-yes", 30)
        assert b"got-yes" in seen, seen
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 4
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_attach_reaches_a_container_reading_stdin(agent: object, kubectl: Kubectl) -> None:
    container = {
        "name": "reader",
        "image": "busybox",
        "command": ["sh", "-c", "echo ready; while read line; do echo heard-$line; done"],
        "stdin": True,
    }
    apply(kubectl, pod("reader", container))
    wait_for(lambda: _running(kubectl, "reader"), 60, "pod reader running")
    process = subprocess.Popen(
        [str(KUBECTL), "--cache-dir", str(kubectl.cache_dir), "attach", "-i", "reader"],
        env={**os.environ, "KUBECONFIG": str(kubectl.kubeconfig)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        time.sleep(1.0)
        process.stdin.write(b"ping\n")
        process.stdin.flush()
        fd = process.stdout.fileno()
        seen = _read_until(fd, b"heard-ping", 30)
        assert b"heard-ping" in seen, seen
    finally:
        process.kill()
        process.wait()


def test_port_forward_reaches_the_containers_port(agent: object, kubectl: Kubectl) -> None:
    container = {
        "name": "web",
        "image": "python:3.12",
        "command": ["sh", "-c", "exec python3 -m http.server $PORT --bind 127.0.0.1"],
        "ports": [{"containerPort": 8000}],
        "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
    }
    apply(kubectl, pod("web", container))
    kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=60s", timeout=70)
    process = subprocess.Popen(
        [str(KUBECTL), "--cache-dir", str(kubectl.cache_dir), "port-forward", "pod/web", ":8000"],
        env={**os.environ, "KUBECONFIG": str(kubectl.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()  # Forwarding from 127.0.0.1:NNNN -> 8000
        if "-> 8000" not in line:
            process.kill()
            assert process.stderr is not None
            raise AssertionError(f"kubectl port-forward: {line}{process.stderr.read().decode()}")
        local = int(line.split("127.0.0.1:")[1].split(" ")[0])
        for _ in range(2):  # two connections through one session
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10) as response:
                    assert response.status == 200
                    assert b"Directory listing" in response.read()
            except OSError as exc:
                process.terminate()
                assert process.stderr is not None
                said = process.stderr.read().decode()
                raise AssertionError(f"{exc}; kubectl said: {said}") from exc
    finally:
        process.terminate()
        process.wait(timeout=10)
