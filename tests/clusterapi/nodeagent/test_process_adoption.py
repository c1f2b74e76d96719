"""Agent restarts on the process runtime, without a server: the state file, process
identities (a reused pid is never taken for the container), the shim keeping a container and
its output across agents, and a runtime resuming the pods an earlier one left."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from clusterapi.nodeagent.runtimes.process import ProcessOptions, ProcessRuntime, handles, shim
from clusterapi.nodeagent.runtimes.process import spec as process_spec
from clusterapi.nodeagent.runtimes.process import state as pod_state

Obj = dict[str, Any]
PY = sys.executable
ROOT = Path(__file__).resolve().parents[3]


def marker() -> str:
    return "marker-" + hashlib.sha1(str(time.time_ns()).encode()).hexdigest()[:12]  # noqa: S324


def marked(tag: str) -> list[int]:
    """Pids of the processes with ``tag`` in their command line (``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                raw = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
                if tag.encode() in raw and state != b"Z":
                    found.append(int(entry.name))
    return sorted(found)


@pytest.fixture
def tag() -> Iterator[str]:
    """A marker for this test's container processes; any left at the end are killed."""
    value = marker()
    yield value
    for pid in marked(value):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


# --- the state file ---------------------------------------------------------------------------


def sample_state(uid: str = "uid-1") -> pod_state.PodState:
    run = pod_state.RunRecord("2030-01-01T00:00:00Z", False, ["sleep", "9"], "/w", "/r", {})
    return pod_state.PodState(
        uid=uid,
        namespace="ns",
        name="p",
        grace=5.0,
        ports_since="2030-01-01T00:00:00Z",
        host_ports=["c:http=31000"],
        ports={"c": {"http": 31000}},
        numbers={"c": {"8000": 31000}},
        containers={
            "c": pod_state.ContainerRecord(False, "h", 2, {"name": "c"}, run=run),
            "i": pod_state.ContainerRecord(True, "g", 0, {"name": "i"}, done=True),
        },
    )


def test_the_state_file_round_trips_and_a_broken_one_is_ignored(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    (pods / "uid-1").mkdir(parents=True)
    written = sample_state()
    pod_state.save(pods / "uid-1" / pod_state.STATE_FILE, written)
    path = pods / "uid-1" / pod_state.STATE_FILE
    assert pod_state.load(path) == written
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list((pods / "uid-1").glob("*.tmp"))  # written beside, then renamed over
    # A file in another pod's directory, and a broken one, are not taken.
    (pods / "uid-2").mkdir()
    pod_state.save(pods / "uid-2" / pod_state.STATE_FILE, sample_state("uid-3"))
    (pods / "uid-4").mkdir()
    (pods / "uid-4" / pod_state.STATE_FILE).write_text('{"version": 1, "uid": ')
    (pods / "uid-5").mkdir()
    (pods / "uid-5" / pod_state.STATE_FILE).write_text('{"version": 99}')
    assert pod_state.load_all(pods) == {"uid-1": written}


# --- identities: a pid the kernel reused is another process ----------------------------------


def test_a_reused_pid_is_not_mistaken_for_the_container(tmp_path: Path) -> None:
    other = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        current = handles.Identity.of(other.pid)
        assert current is not None and current.alive()
        boot = shim.boot_id()
        assert boot and current.boot == boot
        # An earlier container with the same pid: it started at another time (or boot).
        for recorded in (
            handles.Identity(other.pid, current.start - 1, boot),
            handles.Identity(other.pid, current.start, "another-boot"),
        ):
            assert not recorded.alive()
            run_dir = tmp_path / "run"
            run_dir.mkdir(exist_ok=True)
            shim_part = f"{other.pid} {current.start - 5}"
            (run_dir / "pid").write_text(
                f"{recorded.boot} {shim_part} {recorded.pid} {recorded.start}\n"
            )
            found = handles.find(run_dir)
            assert found is not None and found.container == recorded
            assert not found.alive() and not found.shim_alive()
            found.signal_group(signal.SIGTERM)  # must not reach the process that has the pid
            time.sleep(0.2)
            assert other.poll() is None
        # The very process: its group is signalled.
        (run_dir / "pid").write_text(f"{boot} 1 1 {current.pid} {current.start}\n")
        found = handles.find(run_dir)
        assert found is not None and found.alive()
        found.signal_group(signal.SIGTERM)
        assert other.wait(timeout=5) == -signal.SIGTERM
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_the_identity_is_read_from_proc_stat_even_with_odd_command_names() -> None:
    # The command name may hold spaces and parentheses: fields are counted after the last ")".
    odd = subprocess.Popen(
        [PY, "-c", "import time; time.sleep(60)"], executable=PY, start_new_session=True
    )
    try:
        found = shim.identity(odd.pid)
        assert found is not None and found[0] == odd.pid
        ticks = int(Path(f"/proc/{odd.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        assert found[1] == ticks
        assert psutil.Process(odd.pid).create_time() == pytest.approx(
            psutil.boot_time() + ticks / os.sysconf("SC_CLK_TCK"), abs=1.0
        )
    finally:
        odd.kill()
        odd.wait()
    assert shim.identity(odd.pid) is None


def test_the_spec_file_keeps_arguments_and_environment_exactly() -> None:
    argv = ["prog", "", "two words", "ünï"]
    env = {"PATH": "/bin", "my-var.x": "a=b", "EMPTY": ""}
    assert shim.decode_spec(shim.encode_spec(argv, env)) == (argv, env)


# --- the shim: a container and its output outlive the agent ----------------------------------


def writer_argv(tag: str, lines: int = 10_000, pause: float = 0.02) -> list[str]:
    code = (
        f"import sys, time\nfor i in range({lines}):\n"
        f" print('line', i, flush=True)\n time.sleep({pause})\n"
    )
    return [PY, "-u", "-c", code, tag]


def test_a_container_outlives_its_agent_and_its_output_is_read_again(
    tmp_path: Path, tag: str
) -> None:
    run_dir = tmp_path / "run" / "c"
    env = {"PATH": os.environ["PATH"], "odd-name.1": "kept", "A": "b"}

    async def first_agent() -> tuple[int, list[bytes]]:
        process = await handles.launch(run_dir, writer_argv(tag), env, tmp_path, stdin=False)
        stdout, _stderr = await process.output()
        lines = [await stdout.readline() for _ in range(3)]
        process.close()  # the agent goes away; nothing stops the container
        return process.pid, lines

    pid, lines = asyncio.run(first_agent())
    assert lines == [b"line 0\n", b"line 1\n", b"line 2\n"]
    time.sleep(0.5)  # output piles up in the pipe meanwhile
    assert marked(tag) == [pid]

    async def second_agent() -> tuple[list[bytes], int, dict[str, str]]:
        process = handles.find(run_dir)
        assert process is not None and process.pid == pid
        assert process.alive() and process.shim_alive() and process.has_output()
        stdout, _stderr = await process.output()
        more = [await stdout.readline() for _ in range(5)]
        environment = process.environment()
        process.signal_group(signal.SIGTERM)
        code = await process.wait()
        process.close()
        return more, code, environment

    more, code, environment = asyncio.run(second_agent())
    # Nothing lost in between: the pipe kept what was written with no agent reading.
    assert more == [f"line {i}\n".encode() for i in range(3, 8)]
    assert code == 128 + signal.SIGTERM
    # Exactly the environment of the spec (no locale variable of the shim's Python).
    assert environment == env
    assert marked(tag) == []


def test_output_left_unread_when_a_container_exits_is_kept_for_the_next_agent(
    tmp_path: Path, tag: str
) -> None:
    run_dir = tmp_path / "run" / "c"
    argv = [
        PY,
        "-u",
        "-c",
        "import time; time.sleep(0.3); print('last words'); print('tail', end='')",
    ]

    async def agent() -> None:
        process = await handles.launch(run_dir, [*argv, tag], {}, tmp_path, stdin=False)
        process.close()  # nobody reads while it exits

    asyncio.run(agent())
    wait_until(lambda: (run_dir / "exit").exists())
    wait_until(lambda: not any(psutil.pid_exists(p) for p in marked(tag)))
    found = handles.find(run_dir)
    assert found is not None
    assert asyncio.run(found.wait()) == 0
    wait_until(lambda: (run_dir / "stdout.rest").exists(), 5)
    wait_until(lambda: not found.shim_alive(), 5)
    assert found.rest() == [("stdout", b"last words\ntail")]


def test_a_program_that_cannot_start_is_a_start_error_and_nothing_runs(tmp_path: Path) -> None:
    async def agent() -> None:
        with pytest.raises(handles.StartError, match='exec: "no-such-program-x": No such file'):
            await handles.launch(
                tmp_path / "run", ["no-such-program-x"], {"PATH": "/bin"}, tmp_path, stdin=False
            )

    asyncio.run(agent())


# --- the runtime: pods resumed by the next agent on the same data dir ------------------------


def make_pod(uid: str, tag: str, **container: Any) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": uid},
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.12",
                    "command": writer_argv(tag, pause=0.05),
                    "ports": [{"name": "http", "containerPort": 8000}],
                    **container,
                }
            ],
        },
        "status": {},
    }


# The earlier agent, in a process of its own so that it can be killed with SIGKILL: runs the
# pod given as JSON, prints each container status as JSON lines.
EARLIER_AGENT = """
import asyncio, json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterapi.settings")
django.setup()
from pathlib import Path
from clusterapi.nodeagent.runtimes.process import ProcessOptions, ProcessRuntime

async def main():
    runtime = ProcessRuntime(ProcessOptions(data_dir=Path(sys.argv[1])))
    async def report(init, containers):
        print(json.dumps(containers), flush=True)
    await runtime.run_pod(json.loads(Path(sys.argv[2]).read_text()), report)

asyncio.run(main())
"""


class Agent:
    """A runtime on ``data_dir`` with its pod's reports (``statuses``), in this process."""

    def __init__(self, data_dir: Path) -> None:
        self.runtime = ProcessRuntime(ProcessOptions(data_dir=data_dir, backoff_base=0.2))
        self.statuses: list[Obj] = []

        async def no_api(path: str, body: Obj | None = None) -> Obj:
            raise AssertionError(f"no API call expected: {path}")

        self.runtime.api = process_spec.Api(get=no_api, post=no_api)
        self.runtime.load_leftovers()

    def start(self, pod: Obj) -> asyncio.Task[None]:
        async def report(init: list[Obj], containers: list[Obj]) -> None:
            self.statuses.append(containers[0])

        return asyncio.create_task(self.runtime.run_pod(pod, report))

    async def until(self, check: Callable[[Obj], bool], timeout: float = 10.0) -> Obj:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.statuses and check(self.statuses[-1]):
                return self.statuses[-1]
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out; last status: {self.statuses[-1:]}")


def run_earlier_agent(data_dir: Path, pod: Obj) -> tuple[subprocess.Popen[str], Obj]:
    """Start the earlier agent; returns it and its container's status once running."""
    # The pod in a file: on the command line, its marker would mark the agent too.
    pod_file = data_dir / "pod.json"
    pod_file.write_text(json.dumps(pod))
    process = subprocess.Popen(
        [PY, "-c", EARLIER_AGENT, str(data_dir), str(pod_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        reported = json.loads(line)[0]
        if "running" in reported["state"]:
            return process, reported
    raise AssertionError(f"the earlier agent exited with {process.wait()}")


def crash(process: subprocess.Popen[str]) -> None:
    process.kill()  # SIGKILL: no clean-up of any kind
    process.wait()


async def log_lines(agent: Agent, pod: Obj) -> list[str]:
    source = agent.runtime.log_source(pod["metadata"]["uid"], "main", False)
    assert not isinstance(source, str), source
    return source[0].read_text().splitlines()


def test_a_restarted_runtime_adopts_the_running_container(tmp_path: Path, tag: str) -> None:
    pod = make_pod("uid-adopt", tag)
    earlier, before = run_earlier_agent(tmp_path, pod)
    pid = wait_until(lambda: marked(tag))[0]
    crash(earlier)
    time.sleep(0.3)
    assert marked(tag) == [pid]  # an orphan now, still writing into its pipe

    async def main() -> None:
        agent = Agent(tmp_path)
        task = agent.start(pod)
        running = await agent.until(lambda s: "running" in s["state"])
        # The same process, the same run: nothing restarted.
        assert marked(tag) == [pid]
        assert running["restartCount"] == 0 and running["ready"] is True
        assert running["containerID"] == before["containerID"]
        assert running["state"] == before["state"]
        container = agent.runtime.runs["uid-adopt"].container("main")
        assert container is not None and container._prepared is not None
        # Its host port is the one the process was given (its environment, read back).
        port = container.ports["http"]
        assert container._prepared.env["BERTH_PORT_HTTP"] == str(port)
        assert agent.runtime.runs["uid-adopt"].host_ports == [f"main:http={port}"]
        # Its output reaches the same log, with nothing lost while no agent read it.
        count = len(await log_lines(agent, pod))
        await asyncio.sleep(0.5)
        lines = [line.split(" ", 3)[3] for line in await log_lines(agent, pod)]
        assert len(lines) > count
        assert lines == [f"line {i}" for i in range(len(lines))]
        await agent.runtime.stop_pod(pod, 5)
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert marked(tag) == []
    assert not (tmp_path / "pods" / "uid-adopt").exists()


def test_a_changed_container_is_replaced_and_the_replacement_counted(
    tmp_path: Path, tag: str
) -> None:
    pod = make_pod("uid-changed", tag)
    earlier, _before = run_earlier_agent(tmp_path, pod)
    pid = wait_until(lambda: marked(tag))[0]
    crash(earlier)
    changed = make_pod("uid-changed", tag, image="python:3.13")

    async def main() -> None:
        agent = Agent(tmp_path)
        task = agent.start(changed)
        running = await agent.until(lambda s: "running" in s["state"] and s["restartCount"] == 1)
        terminated = running["lastState"]["terminated"]
        assert terminated["exitCode"] == 128 + signal.SIGTERM and terminated["reason"] == "Error"
        (replacement,) = marked(tag)
        assert replacement != pid and not psutil.pid_exists(pid)
        await agent.runtime.stop_pod(changed, 5)
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert marked(tag) == []


def test_the_processes_of_a_pod_gone_meanwhile_are_stopped(tmp_path: Path, tag: str) -> None:
    pod = make_pod("uid-gone", tag)
    earlier, _before = run_earlier_agent(tmp_path, pod)
    wait_until(lambda: marked(tag))
    crash(earlier)

    async def main() -> None:
        agent = Agent(tmp_path)
        assert set(agent.runtime.leftovers) == {"uid-gone"}
        agent.runtime.sync_pods(set(), set())  # the agent's first list: no such pod
        await asyncio.gather(*agent.runtime._discarding)
        await agent.runtime.close()

    asyncio.run(main())
    assert marked(tag) == []
    assert not (tmp_path / "pods" / "uid-gone").exists()


def test_after_a_clean_stop_the_next_runtime_restarts_and_counts_it(
    tmp_path: Path, tag: str
) -> None:
    pod = make_pod("uid-clean", tag)

    async def first() -> int:
        agent = Agent(tmp_path)
        task = agent.start(pod)
        await agent.until(lambda s: "running" in s["state"])
        (pid,) = marked(tag)
        task.cancel()  # what the agent does to its pods' tasks when it stops
        await asyncio.gather(task, return_exceptions=True)
        await agent.runtime.close()
        return pid

    pid = asyncio.run(first())
    assert marked(tag) == []  # a stopping agent takes its containers down

    async def second() -> None:
        agent = Agent(tmp_path)
        task = agent.start(pod)
        running = await agent.until(lambda s: "running" in s["state"] and s["restartCount"] == 1)
        assert running["lastState"]["terminated"]["exitCode"] == 128 + signal.SIGKILL
        (replacement,) = marked(tag)
        assert replacement != pid
        assert len(agent.runtime.log_source("uid-clean", "main", True)) == 2  # --previous
        await agent.runtime.stop_pod(pod, 5)
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(second())
    assert marked(tag) == []


def test_two_agents_never_share_a_data_dir(tmp_path: Path) -> None:
    first = ProcessRuntime(ProcessOptions(data_dir=tmp_path))
    second = ProcessRuntime(ProcessOptions(data_dir=tmp_path))
    first.lock_data_dir()
    with pytest.raises(RuntimeError, match="another node agent runs on"):
        second.lock_data_dir()
    asyncio.run(first.close())
    second.lock_data_dir()  # free again once the first is gone
    asyncio.run(second.close())


def test_a_token_left_on_disk_keeps_its_refresh_schedule(tmp_path: Path) -> None:
    from clusterapi.nodeagent.runtimes.process.runtime import _token_from_file

    claims = json.dumps({"iat": 1_800_000_000, "exp": 1_800_003_607}).encode()
    body = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
    (tmp_path / "token").write_text(f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln")
    token = _token_from_file({"path": "token"}, tmp_path / "token")
    assert (token.issued, token.expires) == (1_800_000_000, 1_800_003_607)
    assert token.token.endswith(".c2ln") and token.file == tmp_path / "token"
    # Unreadable: taken as expired, so refreshed at once.
    (tmp_path / "broken").write_text("not a jwt")
    assert _token_from_file({}, tmp_path / "broken").refresh_at == 0.0
    assert _token_from_file({}, tmp_path / "missing").refresh_at == 0.0


def test_a_container_that_ended_while_no_agent_ran_is_reported_as_it_ended(
    tmp_path: Path, tag: str
) -> None:
    code = "import time; print('started'); time.sleep(1.5); print('finished'); raise SystemExit(3)"
    pod = make_pod("uid-ended", tag, command=[PY, "-u", "-c", code, tag])
    pod["spec"]["restartPolicy"] = "Never"
    earlier, _before = run_earlier_agent(tmp_path, pod)
    crash(earlier)
    # It ends with nobody reading its output: the shim keeps it.
    wait_until(lambda: (tmp_path / "pods" / "uid-ended" / "run" / "main" / "exit").exists())

    async def main() -> None:
        agent = Agent(tmp_path)
        task = agent.start(pod)
        await asyncio.wait_for(task, 10)  # Never: nothing to restart
        terminated = agent.statuses[-1]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert agent.statuses[-1]["restartCount"] == 0
        path = tmp_path / "pods" / "uid-ended" / "logs" / "main" / "0.log"
        lines = [line.split(" ", 3)[3] for line in path.read_text().splitlines()]
        assert lines == ["started", "finished"]

    asyncio.run(main())
    assert marked(tag) == []
