"""The process runtime with real processes, no API server: a fake API serves what pods
reference, and the agent's status code turns reported container statuses into pod status."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from clusterapi.nodeagent import status
from clusterapi.nodeagent.runtimes.process import ProcessOptions, ProcessRuntime, logs, logserver
from clusterapi.nodeagent.runtimes.process import spec as process_spec

Obj = dict[str, Any]
PY = sys.executable


class Harness:
    """A runtime whose pods report into ``self.reports``; ``objects`` is the fake API."""

    def __init__(self, tmp_path: Path) -> None:
        self.runtime = ProcessRuntime(
            ProcessOptions(data_dir=tmp_path, backoff_base=0.2, memory_poll=0.05)
        )
        self.objects: dict[str, Obj] = {}
        self.posts: list[tuple[str, Obj]] = []
        self.reports: list[Obj] = []

        async def get(path: str) -> Obj | None:
            return self.objects.get(path)

        async def post(path: str, body: Obj) -> Obj:
            self.posts.append((path, body))
            return {"status": {"token": "projected-token"}}

        self.runtime.api = process_spec.Api(
            get=get, post=post, server_host="10.0.0.1", server_port="6443"
        )

    def start(self, pod: Obj) -> asyncio.Task[None]:
        async def report(init: list[Obj], containers: list[Obj]) -> None:
            self.reports.append(
                status.pod_status(
                    pod,
                    init,
                    containers,
                    host_ip="127.0.0.1",
                    pod_ip="127.0.0.1",
                    start_time="2030-01-01T00:00:00Z",
                )
            )

        return asyncio.create_task(self.runtime.run_pod(pod, report))

    @property
    def last(self) -> Obj:
        return self.reports[-1] if self.reports else {}

    async def until(self, check: Callable[[Obj], bool], timeout: float = 10.0) -> Obj:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.reports and check(self.last):
                return self.last
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out; last status: {self.last}")


def make_pod(*containers: Obj, policy: str = "Always", uid: str = "", **extra: Any) -> Obj:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": uid or hashlib.sha1(str(time.time_ns()).encode()).hexdigest(),  # noqa: S324
            "labels": {"app": "web"},
        },
        "spec": {"restartPolicy": policy, "containers": list(containers), **extra},
        "status": {},
    }


def py(name: str, code: str, **extra: Any) -> Obj:
    return {"name": name, "image": "python:3.12", "args": ["-u", "-c", code], **extra}


def container_state(reported: Obj, index: int = 0) -> Obj:
    return dict(reported["containerStatuses"][index]["state"])


def run(test: Callable[[Harness], Awaitable[None]], tmp_path: Path) -> None:
    async def main() -> None:
        harness = Harness(tmp_path)
        try:
            await test(harness)
        finally:
            for run in list(harness.runtime.runs.values()):
                await run.stop(0)

    asyncio.run(main())


async def log_text(
    harness: Harness, pod: Obj, container: str, previous: bool = False, **options: Any
) -> str:
    source = harness.runtime.log_source(pod["metadata"]["uid"], container, previous)
    assert not isinstance(source, str), source
    path, live = source
    chunks = [c async for c in logs.read(path, logs.ReadOptions(**options), live)]
    return b"".join(chunks).decode()


def test_a_command_runs_to_completion_and_its_output_is_logged(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        pod = make_pod(
            py("main", "import sys; print('hello'); print('oops', file=sys.stderr)"), policy="Never"
        )
        task = h.start(pod)
        await asyncio.wait_for(task, 10)
        assert h.last["phase"] == "Succeeded"
        terminated = container_state(h.last)["terminated"]
        assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
        assert await log_text(h, pod, "main") == "hello\noops\n"
        stamped = await log_text(h, pod, "main", timestamps=True, tail_lines=1)
        stamp, _, text = stamped.partition(" ")
        assert text == "oops\n" and len(stamp) == 30 and stamp.endswith("Z")
        assert await log_text(h, pod, "main", limit_bytes=3) == "hel"

    run(test, tmp_path)


def test_an_image_without_command_is_errimagepull_unless_known(tmp_path: Path) -> None:
    assert process_spec.entrypoint("docker.io/library/python:3.12-slim") == ("python3",)
    assert process_spec.entrypoint("busybox@sha256:abc") == ("sh",)

    async def test(h: Harness) -> None:
        h.start(make_pod({"name": "web", "image": "nginx:1.27"}))
        reported = await h.until(
            lambda s: (
                "waiting" in container_state(s)
                and container_state(s)["waiting"]["reason"] == "ErrImagePull"
            )
        )
        assert "nginx:1.27" in container_state(reported)["waiting"]["message"]
        assert reported["phase"] == "Pending"

    run(test, tmp_path)


def test_a_crashing_container_backs_off_then_previous_log_is_kept(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        pod = make_pod(py("c", "import os; print('run', os.getpid()); raise SystemExit(3)"))
        h.start(pod)
        reported = await h.until(
            lambda s: (
                container_state(s).get("waiting", {}).get("reason") == "CrashLoopBackOff"
                and s["containerStatuses"][0]["restartCount"] >= 1
            )
        )
        last = reported["containerStatuses"][0]["lastState"]["terminated"]
        assert last["exitCode"] == 3 and last["reason"] == "Error"
        assert reported["phase"] == "Running"
        assert (await log_text(h, pod, "c", previous=True)).startswith("run ")

    run(test, tmp_path)


def test_a_process_over_its_memory_limit_is_oomkilled(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        hog = (
            "import time; x = bytearray(200 * 1024 * 1024); x[::4096] = b'x' * len(x[::4096]); "
            "time.sleep(30)"
        )
        pod = make_pod(py("hog", hog, resources={"limits": {"memory": "64Mi"}}), policy="Never")
        await asyncio.wait_for(h.start(pod), 20)
        terminated = container_state(h.last)["terminated"]
        assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
        assert h.last["phase"] == "Failed"

    run(test, tmp_path)


def test_init_containers_run_first_and_share_an_emptydir(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        pod = make_pod(
            py(
                "main",
                "print(open('/work/done').read())",
                volumeMounts=[{"name": "work", "mountPath": "/work"}],
            ),
            policy="Never",
            initContainers=[
                {
                    "name": "one",
                    "image": "busybox",
                    "args": ["-c", "echo one > /work/done"],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                },
                {
                    "name": "two",
                    "image": "busybox",
                    "args": ["-c", "echo two >> /work/done"],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                },
            ],
            volumes=[{"name": "work", "emptyDir": {}}],
        )
        await asyncio.wait_for(h.start(pod), 10)
        assert h.last["phase"] == "Succeeded", h.last
        assert [s["state"]["terminated"]["reason"] for s in h.last["initContainerStatuses"]] == [
            "Completed",
            "Completed",
        ]
        assert await log_text(h, pod, "main") == "one\ntwo\n\n"

    run(test, tmp_path)


def test_env_and_files_come_from_configmaps_secrets_and_the_pod(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        h.objects["/api/v1/namespaces/ns/configmaps/cfg"] = {"data": {"color": "blue", "size": "L"}}
        secret = base64.b64encode(b"s3cret").decode()
        h.objects["/api/v1/namespaces/ns/secrets/sec"] = {"data": {"password": secret}}
        code = (
            "import os; e = os.environ; "
            "print(e['COLOR'], e['CFG_size'], e['PASSWORD'], e['POD'], e['APP'], e['MEM_MI'], "
            "e['GREETING'], e['KUBERNETES_SERVICE_HOST']); "
            "print(open('/etc/config/color').read(), open('/etc/secret/password').read()); "
            "print(open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()); "
            "print(os.getcwd() == os.path.join(e['BERTH_ROOT'], 'app'))"
        )
        main = py(
            "main",
            code,
            workingDir="/app",
            envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            env=[
                {
                    "name": "COLOR",
                    "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}},
                },
                {
                    "name": "PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}},
                },
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {
                    "name": "MEM_MI",
                    "valueFrom": {
                        "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}
                    },
                },
                {"name": "GREETING", "value": "hi-$(COLOR)"},
            ],
            resources={"limits": {"memory": "512Mi"}},
            volumeMounts=[
                {"name": "config", "mountPath": "/etc/config"},
                {"name": "secret", "mountPath": "/etc/secret", "readOnly": True},
                {"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
            ],
        )
        pod = make_pod(
            main,
            policy="Never",
            volumes=[
                {"name": "config", "configMap": {"name": "cfg"}},
                {"name": "secret", "secret": {"secretName": "sec"}},
                {
                    "name": "token",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
                        ]
                    },
                },
            ],
        )
        await asyncio.wait_for(h.start(pod), 10)
        assert h.last["phase"] == "Succeeded", await log_text(h, pod, "main")
        assert (await log_text(h, pod, "main")).splitlines() == [
            "blue L s3cret p web 512 hi-blue 10.0.0.1",
            "blue s3cret",
            "projected-token",
            "True",
        ]
        path, body = h.posts[0]
        assert path == "/api/v1/namespaces/ns/serviceaccounts/default/token"
        assert body["spec"]["boundObjectRef"]["uid"] == pod["metadata"]["uid"]

    run(test, tmp_path)


def test_a_missing_configmap_is_a_config_error(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        ref = {"configMapKeyRef": {"name": "absent", "key": "k"}}
        h.start(make_pod(py("main", "pass", env=[{"name": "X", "valueFrom": ref}])))
        reported = await h.until(
            lambda s: (
                "waiting" in container_state(s)
                and container_state(s)["waiting"]["reason"] == "CreateContainerConfigError"
            )
        )
        assert container_state(reported)["waiting"]["message"] == 'configmap "absent" not found'

    run(test, tmp_path)


def http_server(**extra: Any) -> Obj:
    return {
        "name": "web",
        "image": "python:3.12",
        "command": ["sh", "-c", "exec python3 -m http.server $PORT --bind 127.0.0.1"],
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 0.2},
        **extra,
    }


def host_port(reported_pod: ProcessRuntime, pod: Obj) -> int:
    condition = reported_pod.extra_conditions(pod)[0]
    assert condition["type"] == "berth.dev/HostPorts"
    mapping = dict(item.split("=") for item in condition["message"].split(","))
    return int(mapping["web:http"])


def test_readiness_probe_makes_an_http_server_ready_on_its_host_port(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        pod = make_pod(http_server())
        h.start(pod)
        reported = await h.until(lambda s: s["containerStatuses"][0]["ready"])
        assert {c["type"]: c["status"] for c in reported["conditions"]}["Ready"] == "True"
        port = host_port(h.runtime, pod)
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        )
        assert b"Directory listing" in body

    run(test, tmp_path)


def test_a_failing_liveness_probe_restarts_the_container(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        probe = {
            "httpGet": {"path": "/missing", "port": 8000},
            "periodSeconds": 0.2,
            "failureThreshold": 2,
        }
        h.start(make_pod(http_server(livenessProbe=probe), terminationGracePeriodSeconds=1))
        reported = await h.until(lambda s: s["containerStatuses"][0]["restartCount"] >= 1, 15)
        assert reported["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 143

    run(test, tmp_path)


def test_an_exec_startup_probe_gates_started(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        probe = {
            "exec": {"command": ["test", "-f", "/data/ready"]},
            "periodSeconds": 0.1,
            "failureThreshold": 100,
        }
        main = py(
            "main",
            "import time, pathlib; time.sleep(0.5); "
            "pathlib.Path('/data/ready').touch(); time.sleep(30)",
            startupProbe=probe,
            volumeMounts=[{"name": "data", "mountPath": "/data"}],
        )
        h.start(make_pod(main, volumes=[{"name": "data", "emptyDir": {}}]))
        first = await h.until(lambda s: "running" in container_state(s))
        assert first["containerStatuses"][0]["started"] is False
        await h.until(
            lambda s: s["containerStatuses"][0]["started"] and s["containerStatuses"][0]["ready"]
        )

    run(test, tmp_path)


def test_stop_sends_sigterm_then_sigkill_to_the_whole_group(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        trap = (
            "import signal, subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('child', child.pid, flush=True); "
            "signal.signal(signal.SIGTERM, lambda *a: print('got TERM', flush=True)); "
            "time.sleep(60)"
        )
        pod = make_pod(py("main", trap))
        h.start(pod)
        await h.until(lambda s: "running" in container_state(s))
        for _ in range(100):
            text = await log_text(h, pod, "main")
            if "child" in text:
                break
            await asyncio.sleep(0.05)
        child = int(text.split()[1])
        began = time.monotonic()
        await h.runtime.stop_pod(pod, 1.0)
        elapsed = time.monotonic() - began
        assert 0.9 <= elapsed < 5
        await asyncio.sleep(0.1)
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"

    run(test, tmp_path)


def test_log_files_rotate_and_read_back_as_one_stream(tmp_path: Path) -> None:
    writer = logs.LogWriter(tmp_path / "0.log", max_bytes=200, keep=3)
    for i in range(20):
        writer.write("stdout", f"line {i}".encode())
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.log", "0.log.1", "0.log.2"]

    async def read(**options: Any) -> list[str]:
        chunks = [
            c
            async for c in logs.read(tmp_path / "0.log", logs.ReadOptions(**options), lambda: False)
        ]
        return b"".join(chunks).decode().splitlines()

    everything = asyncio.run(read())
    assert everything == [f"line {i}" for i in range(20 - len(everything), 20)]
    assert asyncio.run(read(tail_lines=2)) == ["line 18", "line 19"]
    assert asyncio.run(read(since_seconds=3600)) == everything
    assert asyncio.run(read(since_time=time.time() + 60)) == []


def test_follow_yields_lines_as_they_are_written(tmp_path: Path) -> None:
    async def test() -> None:
        writer = logs.LogWriter(tmp_path / "0.log")
        writer.write("stdout", b"first")
        seen: list[bytes] = []

        async def follow() -> None:
            async for chunk in logs.read(
                tmp_path / "0.log", logs.ReadOptions(follow=True), lambda: not writer.closed
            ):
                seen.append(chunk)

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        assert seen == [b"first\n"]
        writer.write("stderr", b"second")
        await asyncio.sleep(0.3)
        assert seen == [b"first\n", b"second\n"]
        writer.close()
        await asyncio.wait_for(task, 2)

    asyncio.run(test())


def test_requests_are_signed_with_a_key_both_sides_derive() -> None:
    from clusterapi.authn import tokens

    token = "berth-node-token"
    key = logserver.node_key(token)
    assert key == logserver.key_from_digest(tokens.digest(token))
    target = "/containerLogs/ns/p/c?uid=u&follow=true"
    header = logserver.sign(key, "n1", target)
    assert logserver.verify(key, "n1", target, header)
    assert not logserver.verify(key, "n2", target, header)
    assert not logserver.verify(key, "n1", target + "&previous=true", header)
    assert not logserver.verify(logserver.node_key("other"), "n1", target, header)
    assert not logserver.verify(key, "n1", target, header, now=time.time() + 120)


def test_the_log_server_answers_signed_requests_only(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        key = logserver.node_key("t")
        server = logserver.LogServer(h.runtime, "n1", key)
        port = await server.start("127.0.0.1", 0)
        pod = make_pod(py("main", "print('from the log server')"), policy="Never")
        await asyncio.wait_for(h.start(pod), 10)
        uid = pod["metadata"]["uid"]

        def get(target: str, signed: bool = True) -> tuple[int, bytes]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{target}")
            if signed:
                request.add_header("Authorization", logserver.sign(key, "n1", target))
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        target = f"/containerLogs/ns/p/main?uid={uid}"
        try:
            assert await asyncio.to_thread(get, target, False) == (401, mock_status(401))
            assert await asyncio.to_thread(get, target) == (200, b"from the log server\n")
            code, body = await asyncio.to_thread(get, target + "&previous=true")
            assert code == 400 and b'previous terminated container \\"main\\"' in body
        finally:
            await server.close()

    run(test, tmp_path)


def mock_status(code: int) -> bytes:
    return logserver._status(code, "Unauthorized", "Unauthorized")


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Any:
    yield
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            if "sleep(60)" in " ".join(child.cmdline()):
                child.kill()


def test_an_agent_that_stops_takes_its_containers_down(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        pod = make_pod(py("busy", "import time\nwhile True: time.sleep(0.05)"))
        task = h.start(pod)
        reported = await h.until(lambda s: "running" in container_state(s))
        assert reported["containerStatuses"][0]["started"] is True
        # The container's pid, as its shim recorded it (boot, shim pid and start, pid, start).
        pids = [int(f.read_text().split()[3]) for f in tmp_path.glob("pods/*/run/*/pid")]
        assert pids
        task.cancel()  # what the agent does to its pods' tasks when it stops
        await asyncio.gather(task, return_exceptions=True)
        await h.runtime.close()
        for pid in pids:
            with pytest.raises(psutil.NoSuchProcess):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                        raise psutil.NoSuchProcess(pid)
                    await asyncio.sleep(0.05)

    run(test, tmp_path)
