"""One container of a pod, as a local process run again and again by its restart policy.

A ``ContainerRun`` owns the container's status (the dict the agent reports) and its runs:
each run is one process started in a session (so a process group) of its own, its stdout and
stderr pumped into the run's log file, its probes on tasks of their own, and its memory
watched. When the process exits, anything left in its group is killed (a container's
children do not outlive it) and the run ends ``terminated`` with upstream's reasons:
``Completed`` (exit 0), ``Error``, ``OOMKilled`` (RSS of the process tree over
``resources.limits.memory``: SIGKILL, exit code 137) or ``StartError`` (the program could not
be started, exit code 128).

Memory limits are enforced by polling the RSS of the process and all its descendants every
``memory_poll`` seconds (psutil), not with ``RLIMIT_AS`` (address space is not memory: a
Python or Go process reserves far more than it uses). A burst shorter than one poll can go
unnoticed. CPU limits are not enforced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from clusterapi.nodeagent.runtimes.process import logs, probes, spec, streams
from clusterapi.scheduler import quantity

if TYPE_CHECKING:
    from clusterapi.nodeagent.runtimes.process.runtime import PodRun

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

START_ERROR_CODE = 128
OOM_EXIT_CODE = 137


@dataclass
class Prepared:
    """What one run executes."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mounts: spec.Mounts


@dataclass
class ContainerRun:
    """A container of ``pod`` (see the module docstring)."""

    pod: PodRun
    spec: Obj
    init: bool = False
    status: Obj = field(default_factory=dict)
    restart_count: int = 0
    process: asyncio.subprocess.Process | None = None
    running: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    by_number: dict[int, int] = field(default_factory=dict)
    _oom: bool = False
    _killing: asyncio.Task[None] | None = None
    _prepared: Prepared | None = None
    output: streams.OutputTee | None = None  # the running process's output, for attach

    def __post_init__(self) -> None:
        self.status.update(
            {
                "name": self.name,
                "image": str(self.spec.get("image") or ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}},
            }
        )

    @property
    def name(self) -> str:
        return str(self.spec.get("name"))

    @property
    def container_id(self) -> str:
        return f"berth-process://{self.pod.uid}-{self.name}-{self.restart_count}"

    def waiting(self, reason: str, message: str = "") -> None:
        state: Obj = {"reason": reason}
        if message:
            state["message"] = message
        self.status["state"] = {"waiting": state}
        self.status["ready"] = False
        self.status["started"] = False

    def log_path(self, restart: int | None = None) -> Path:
        count = self.restart_count if restart is None else restart
        return logs.log_path(self.pod.runtime.pods_dir, self.pod.uid, self.name, count)

    # --- preparing -----------------------------------------------------------------------

    async def prepare(self) -> Prepared:
        """Program, environment and files of the next run; raises ``spec.ImageError`` or
        ``spec.ConfigError``."""
        container = self.spec
        root = self.pod.dir / "root" / self.name
        mounts, volume_of = spec.mount(container, self.pod.volumes, root)
        base = dict(self.pod.base_env)
        base["HOME"] = str(root)
        base.update(mounts.env(volume_of))
        for index, (key, host_port) in enumerate(self.ports.items()):
            if index == 0:
                base["PORT"] = str(host_port)
            base[f"BERTH_PORT_{spec.env_name(key)}"] = str(host_port)
        env = await spec.environment(self.pod.resolver, container, base)
        env = {k: mounts.rewrite(v) if k not in base else v for k, v in env.items()}
        command = [str(c) for c in container.get("command") or ()]
        args = [str(a) for a in container.get("args") or ()]
        if not command:
            command = list(spec.entrypoint(str(container.get("image") or "")))
        argv = [mounts.rewrite(spec.expand(part, env)) for part in [*command, *args]]
        cwd = root
        working_dir = str(container.get("workingDir") or "")
        if working_dir:
            rewritten = mounts.rewrite(working_dir)
            if rewritten != working_dir or Path(working_dir).is_dir():
                cwd = Path(rewritten)
            else:
                cwd = root / working_dir.lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
        return Prepared(argv, env, cwd, mounts)

    # --- running -------------------------------------------------------------------------

    async def run_once(self) -> tuple[int, str, str]:
        """Start the process and wait for it: (exit code, reason, message)."""
        prepared = self._prepared = await self.prepare()
        writer = self.output = streams.OutputTee(
            self.log_path(),
            self.pod.runtime.options.log_max_bytes,
            self.pod.runtime.options.log_keep,
        )
        started_at = logs.rfc3339nano()[:19] + "Z"
        self._oom = False
        try:
            process = await asyncio.create_subprocess_exec(
                *prepared.argv,
                cwd=prepared.cwd,
                env=prepared.env,
                # Kept open for attach when the container asks for it (upstream's ``stdin``).
                stdin=asyncio.subprocess.PIPE
                if self.spec.get("stdin")
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            writer.close()
            message = f'exec: "{prepared.argv[0]}": {exc.strerror or exc}'
            self._terminate_status(START_ERROR_CODE, "StartError", message, started_at)
            return START_ERROR_CODE, "StartError", message
        self.process = process
        self.running = True
        pid_file = self.pod.dir / "pids" / self.name
        self.pod.runtime.record_pid(pid_file, process.pid)
        probe_specs = {
            kind: self.spec.get(f"{kind}Probe")
            for kind in ("startup", "liveness", "readiness")
            if not self.init and self.spec.get(f"{kind}Probe")
        }
        self.status["containerID"] = self.container_id
        self.status["state"] = {"running": {"startedAt": started_at}}
        self.status["started"] = not self.init and "startup" not in probe_specs
        self.status["ready"] = bool(self.status["started"]) and "readiness" not in probe_specs
        await self.pod.publish()
        assert process.stdout is not None and process.stderr is not None
        helpers = [
            asyncio.create_task(logs.pump(process.stdout, "stdout", writer)),
            asyncio.create_task(logs.pump(process.stderr, "stderr", writer)),
        ]
        watchers = [asyncio.create_task(self._watch_memory(process.pid))]
        if "startup" in probe_specs:
            watchers.append(self._probe("startup", probe_specs, watchers))
        else:
            self._start_probes(probe_specs, watchers)
        try:
            code = await process.wait()
            # The container is gone: so are the processes it left in its group.
            self._signal_group(signal.SIGKILL)
            for helper in helpers:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(helper), 2.0)
        finally:
            if process.returncode is None:
                # Cancelled while it runs (the agent is stopping): a process nobody watches
                # any more must not stay behind.
                self._signal_group(signal.SIGKILL)
            for task in [*watchers, *helpers]:
                task.cancel()
            await asyncio.gather(*watchers, *helpers, return_exceptions=True)
            writer.close()
            pid_file.unlink(missing_ok=True)
            self.running = False
            self.process = None
        exit_code = 128 - code if code < 0 else code
        if self._oom:
            reason, exit_code = "OOMKilled", OOM_EXIT_CODE
        else:
            reason = "Completed" if exit_code == 0 else "Error"
        self._terminate_status(exit_code, reason, "", started_at)
        return exit_code, reason, ""

    def _terminate_status(self, code: int, reason: str, message: str, started_at: str) -> None:
        terminated: Obj = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": logs.rfc3339nano()[:19] + "Z",
            "containerID": self.container_id,
        }
        if message:
            terminated["message"] = message
        self.status["state"] = {"terminated": terminated}
        self.status["containerID"] = self.container_id
        self.status["ready"] = bool(self.init and code == 0)
        self.status["started"] = False

    def _start_probes(self, probe_specs: Obj, watchers: list[asyncio.Task[Any]]) -> None:
        for kind in ("liveness", "readiness"):
            if kind in probe_specs:
                watchers.append(self._probe(kind, probe_specs, watchers))

    def _probe(
        self, kind: str, probe_specs: Obj, watchers: list[asyncio.Task[Any]]
    ) -> asyncio.Task[None]:
        async def attempt(probe: Obj) -> tuple[bool, str]:
            return await probes.check(
                probe, self.ports, self.by_number, self.pod.runtime.pod_ip, self.exec_in
            )

        async def on_result(ok: bool, message: str) -> None:
            if kind == "readiness":
                if self.running and self.status.get("ready") != ok:
                    self.status["ready"] = ok
                    await self.pod.publish()
            elif kind == "startup" and ok:
                self.status["started"] = True
                self.status["ready"] = "readiness" not in probe_specs
                await self.pod.publish()
                self._start_probes(probe_specs, watchers)
            elif not ok:
                logger.info(
                    "pod %s: container %s failed its %s probe (%s); restarting",
                    self.pod.key,
                    self.name,
                    kind,
                    message,
                )
                probe = probe_specs[kind]
                grace = probe.get("terminationGracePeriodSeconds")
                if grace is None:
                    grace = self.pod.grace_seconds
                self.kill_soon(float(grace))

        prober = probes.Prober(kind, probe_specs[kind], attempt, on_result)
        return asyncio.create_task(prober.run())

    async def exec_in(self, command: list[str], timeout: float) -> int:
        """Run ``command`` in the container's environment (exec probes); its exit code."""
        prepared = self._prepared
        if prepared is None or not command:
            return 1
        process = await asyncio.create_subprocess_exec(
            *[prepared.mounts.rewrite(c) for c in command],
            cwd=prepared.cwd,
            env=prepared.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()

    async def _watch_memory(self, pid: int) -> None:
        limit_text = ((self.spec.get("resources") or {}).get("limits") or {}).get("memory")
        if limit_text is None:
            return
        limit = int(quantity.parse(str(limit_text)))
        poll = self.pod.runtime.options.memory_poll
        while True:
            await asyncio.sleep(poll)
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            used = 0
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    used += proc.memory_info().rss
            if used > limit:
                logger.info(
                    "pod %s: container %s uses %d bytes, over its limit %d: OOMKilled",
                    self.pod.key,
                    self.name,
                    used,
                    limit,
                )
                self._oom = True
                self._signal_group(signal.SIGKILL)
                return

    # --- stopping ------------------------------------------------------------------------

    def _signal_group(self, sig: int) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def kill_soon(self, grace: float) -> None:
        """Stop the current run (a failed probe) without waiting for it here."""
        if self._killing is None or self._killing.done():
            self._killing = asyncio.create_task(self.kill(grace))

    async def kill(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; returns once the
        process has exited."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), max(grace, 0.0))
        except TimeoutError:
            logger.info(
                "pod %s: container %s ignored SIGTERM for %.0fs: SIGKILL",
                self.pod.key,
                self.name,
                grace,
            )
            self._signal_group(signal.SIGKILL)
            await process.wait()

    # --- the restart loop ----------------------------------------------------------------

    async def loop(self, policy: str, sleep: Callable[[float], Awaitable[None]]) -> int:
        """Run until the restart policy says done (or the pod stops); the last exit code."""
        backoff = 0.0
        options = self.pod.runtime.options
        code = 0
        while not self.pod.stopping:
            try:
                loop = asyncio.get_running_loop()
                began = loop.time()
                code, _reason, _message = await self.run_once()
            except spec.ImageError as exc:
                self.waiting("ErrImagePull", str(exc))
                await self.pod.publish()
                await sleep(float("inf"))
                return 1
            except spec.ConfigError as exc:
                self.waiting("CreateContainerConfigError", str(exc))
                await self.pod.publish()
                await sleep(max(options.backoff_base, 1.0))
                continue
            if self.pod.stopping:
                return code
            if (
                policy == "Never"
                or (policy == "OnFailure" and code == 0)
                or (self.init and code == 0)
            ):
                await self.pod.publish()
                return code
            if loop.time() - began > 2 * options.backoff_max:
                backoff = 0.0  # it ran long enough: a new crash starts over
            self.status["lastState"] = dict(self.status["state"])
            if backoff > 0:
                self.waiting(
                    "CrashLoopBackOff",
                    f"back-off {backoff:g}s restarting failed container={self.name} "
                    f"pod={self.pod.name}_{self.pod.namespace}({self.pod.uid})",
                )
                await self.pod.publish()
                await sleep(backoff)
            backoff = min(max(backoff * 2, options.backoff_base), options.backoff_max)
            if self.pod.stopping:
                return code
            self.restart_count += 1
            self.status["restartCount"] = self.restart_count
        return code
