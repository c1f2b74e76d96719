"""One container of a pod, as a local process run again and again by its restart policy.

A ``ContainerRun`` owns the container's status (the dict the agent reports) and its runs:
each run is one process started through a shim (``handles``, ``shim``) in a session (so a
process group) of its own, its stdout and stderr pumped from the run's FIFOs into the run's
log file, its probes on tasks of their own, and its memory watched. When the process exits,
anything left in its group is killed (a container's children do not outlive it) and the run
ends ``terminated`` with upstream's reasons: ``Completed`` (exit 0), ``Error``, ``OOMKilled``
(RSS of the process tree over ``resources.limits.memory``: SIGKILL, exit code 137),
``StartError`` (the program could not be started, exit code 128) or
``ContainerStatusUnknown`` (exit code 137: its shim died too, so how it ended is lost).
Where pods get mount namespaces (``incluster``), the process is started through ``unshare``
and ``sh``, which bind its service-account directory at the standard path and then ``exec``
the program: the pid is the program's all the same.

Memory limits are enforced by polling the RSS of the process and all its descendants every
``memory_poll`` seconds (psutil), not with ``RLIMIT_AS`` (address space is not memory: a
Python or Go process reserves far more than it uses). A burst shorter than one poll can go
unnoticed. CPU limits are not enforced.

After an agent restart, ``resume`` takes over the run an earlier agent recorded (``state``):
a container whose shim still runs, whose spec is unchanged and whose stdin was not a pipe
from the earlier agent is adopted (the same process, watched, probed and logged as if started
here); any other is stopped (SIGTERM to its group, SIGKILL after the pod's grace period) and
reported terminated with the exit code its shim saw. The restart policy then decides, as
after any exit: a replacement is a restart, counted in ``restartCount``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from clusterapi.nodeagent.runtimes.process import (
    handles,
    incluster,
    logs,
    probes,
    spec,
    state,
    streams,
)
from clusterapi.nodeagent.runtimes.process.spec import Mounts
from clusterapi.scheduler import quantity

if TYPE_CHECKING:
    from clusterapi.nodeagent.runtimes.process.runtime import PodRun

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

START_ERROR_CODE = 128
OOM_EXIT_CODE = 137
Result = tuple[int, str, str]  # exit code, reason, message


@dataclass
class Prepared:
    """What one run executes."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mounts: spec.Mounts
    # With mount namespaces: what to bind at the service-account path, and read-only or not.
    bind: tuple[Path, bool] | None = None


@dataclass
class ContainerRun:
    """A container of ``pod`` (see the module docstring)."""

    pod: PodRun
    spec: Obj
    init: bool = False
    status: Obj = field(default_factory=dict)
    restart_count: int = 0
    process: handles.Handle | None = None
    running: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    by_number: dict[int, int] = field(default_factory=dict)
    # What an earlier agent recorded of this container (``resume``), until the loop takes it.
    leftover: state.ContainerRecord | None = None
    done: bool = False  # the restart policy is done with it
    last_exit: Obj | None = None  # the last run's terminated state while its restart waits
    run_record: state.RunRecord | None = None  # the run in progress
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

    @property
    def run_dir(self) -> Path:
        """The shim's directory of the current run (``shim``)."""
        return self.pod.dir / "run" / self.name

    @functools.cached_property
    def spec_hash(self) -> str:
        return state.spec_hash(self.spec)

    def record(self) -> state.ContainerRecord:
        """What the pod's state file keeps of this container."""
        return state.ContainerRecord(
            init=self.init,
            spec_hash=self.spec_hash,
            restart_count=self.restart_count,
            status=self.status,
            done=self.done,
            last_exit=self.last_exit,
            run=self.run_record,
        )

    def _log_writer(self) -> streams.OutputTee:
        options = self.pod.runtime.options
        return streams.OutputTee(self.log_path(), options.log_max_bytes, options.log_keep)

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
        bind = self._service_account_access(mounts, base)
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
        return Prepared(argv, env, cwd, mounts, bind)

    def _service_account_access(
        self, mounts: Mounts, base: dict[str, str]
    ) -> tuple[Path, bool] | None:
        """How in-cluster clients of this container find its token (``incluster``): the
        directory to bind at the standard path, or else a kubeconfig named in ``base``."""
        access = self.pod.access
        source = mounts.paths.get(incluster.MOUNT_PATH)
        if access.namespace:
            if source is None:
                # Nothing of the pod's there: an empty directory, never the host's own.
                return self.pod.empty_dir(), True
            return source, incluster.MOUNT_PATH in mounts.read_only
        api = self.pod.runtime.api
        if source is None or not api.server_host:
            return None
        config = incluster.kubeconfig(
            incluster.server_url(api.server_host, api.server_port),
            self.pod.namespace,
            source,
            self.pod.token_for(source / "token"),
        )
        path = self.pod.dir / "kube" / f"{self.name}.kubeconfig"
        incluster.write_kubeconfig(path, config)
        base["KUBECONFIG"] = str(path)
        return None

    # --- running -------------------------------------------------------------------------

    async def run_once(self) -> Result:
        """Start the process and wait for it: (exit code, reason, message)."""
        prepared = self._prepared = await self.prepare()
        writer = self.output = self._log_writer()
        started_at = logs.rfc3339nano()[:19] + "Z"
        self._oom = False
        self.last_exit = None
        self.run_record = state.RunRecord(
            started_at=started_at,
            stdin=bool(self.spec.get("stdin")),
            argv=prepared.argv,
            cwd=str(prepared.cwd),
            root=str(prepared.mounts.root),
            mounts={k: str(v) for k, v in prepared.mounts.paths.items()},
        )
        # Recorded before the shim starts: an agent killed from here on leaves a run the next
        # one finds (its processes named by the shim's pid file), never an unknown process.
        self.pod.save()
        argv = prepared.argv
        try:
            if prepared.bind is not None:
                # Started through unshare and sh: a missing program must fail here, as an
                # exec would, not later as an exit code of the wrapper.
                incluster.check_executable(argv[0], prepared.env, prepared.cwd)
                argv = self.pod.access.wrap(argv, *prepared.bind)
            process = await handles.launch(
                self.run_dir,
                argv,
                prepared.env,
                prepared.cwd,
                # Kept open for attach when the container asks for it (upstream's ``stdin``).
                stdin=self.run_record.stdin,
            )
        except (OSError, handles.StartError) as exc:
            writer.close()
            if isinstance(exc, handles.StartError):
                message = exc.message
            else:
                message = f'exec: "{prepared.argv[0]}": {exc.strerror or exc}'
            self.run_record = None
            self._terminate_status(START_ERROR_CODE, "StartError", message, started_at)
            self.last_exit = dict(self.status["state"]["terminated"])
            return START_ERROR_CODE, "StartError", message
        except BaseException:
            writer.close()
            raise
        return await self._supervise(process, writer, started_at, resumed=False)

    async def _supervise(
        self,
        process: handles.Handle,
        writer: streams.OutputTee,
        started_at: str,
        *,
        resumed: bool,
    ) -> Result:
        """Watch a running process (started here or adopted) until it exits."""
        self.process = process
        self.output = writer
        self.running = True
        probe_specs = {
            kind: self.spec.get(f"{kind}Probe")
            for kind in ("startup", "liveness", "readiness")
            if not self.init and self.spec.get(f"{kind}Probe")
        }
        if resumed:
            # As the earlier agent last reported it: probes only report what they find
            # changed, so an adopted pod that was Ready stays Ready.
            started = bool(self.status.get("started")) or "startup" not in probe_specs
            ready = bool(self.status.get("ready")) or "readiness" not in probe_specs
        else:
            started = "startup" not in probe_specs
            ready = "readiness" not in probe_specs
        self.status["containerID"] = self.container_id
        self.status["state"] = {"running": {"startedAt": started_at}}
        self.status["started"] = started and not self.init
        self.status["ready"] = started and ready and not self.init
        helpers: list[asyncio.Task[None]] = []
        watchers: list[asyncio.Task[Any]] = []
        try:
            # Within the try: whatever fails from here on, the process is not left behind.
            stdout, stderr = await process.output()
            helpers += [
                asyncio.create_task(logs.pump(stdout, "stdout", writer)),
                asyncio.create_task(logs.pump(stderr, "stderr", writer)),
            ]
            watchers.append(asyncio.create_task(self._watch_memory(process.pid)))
            if "startup" in probe_specs and not started:
                watchers.append(self._probe("startup", probe_specs, watchers))
            else:
                self._start_probes(probe_specs, watchers)
            await self.pod.publish()
            await process.wait()
            # The container is gone: so are the processes it left in its group.
            process.signal_group(signal.SIGKILL)
            for helper in helpers:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(helper), 2.0)
        finally:
            if not process.finished:
                # Cancelled while it runs (the agent is stopping; or a failure): a process
                # nobody watches any more must not stay behind. Its run stays recorded: the
                # next agent on this data dir learns from its shim how it ended.
                process.signal_group(signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(process.wait()), 2.0)
            for task in [*watchers, *helpers]:
                task.cancel()
            await asyncio.gather(*watchers, *helpers, return_exceptions=True)
            process.close()
            if process.finished:
                write_rest(writer, process.rest())
            writer.close()
            self.running = False
            self.process = None
        return self._ended(process, started_at)

    def _ended(self, process: handles.Handle, started_at: str) -> Result:
        """Status and record of a run that is over; its (exit code, reason, message)."""
        assert process.returncode is not None
        exit_code, message = process.returncode, ""
        if self._oom:
            reason, exit_code = "OOMKilled", OOM_EXIT_CODE
        elif process.error:
            reason, message = "StartError", process.error
        elif process.lost:
            reason = "ContainerStatusUnknown"
            message = "its shim was killed before it: how it ended is unknown"
        else:
            reason = "Completed" if exit_code == 0 else "Error"
        self._terminate_status(exit_code, reason, message, started_at)
        self.run_record = None
        self.last_exit = dict(self.status["state"]["terminated"])
        self.pod.save()
        return exit_code, reason, message

    async def resume(self, record: state.ContainerRecord) -> Result | None:
        """Take over what an earlier agent left of this container: adopt its process, or
        stop it. Returns how that run ended; None when there is no run to take over."""
        self.restart_count = record.restart_count
        self.status.update(record.status)
        self.status["restartCount"] = self.restart_count
        run = record.run
        if run is None:
            if record.last_exit is None:
                return None  # it never ran
            # It had exited and waited for its restart.
            terminated = dict(record.last_exit)
            self.last_exit = terminated
            self.status["state"] = {"terminated": dict(terminated)}
            return (
                int(terminated.get("exitCode") or 0),
                str(terminated.get("reason") or ""),
                str(terminated.get("message") or ""),
            )
        process = handles.find(self.run_dir)
        if process is None:
            return None  # the agent died before its shim started the program
        self.run_record = run
        self._prepared = Prepared(
            run.argv,
            process.environment(),
            Path(run.cwd),
            spec.Mounts(Path(run.root), {k: Path(v) for k, v in run.mounts.items()}),
        )
        why = self._not_adoptable(record, process)
        if why is None:
            logger.info(
                "pod %s: adopted container %s (pid %d)", self.pod.key, self.name, process.pid
            )
            return await self._supervise(process, self._log_writer(), run.started_at, resumed=True)
        if process.alive():
            logger.info(
                "pod %s: replacing container %s (pid %d): %s",
                self.pod.key,
                self.name,
                process.pid,
                why,
            )
            self.process = process  # within reach of a stop meanwhile
            try:
                await self._stop(process, self.pod.grace_seconds)
            finally:
                self.process = None
        else:
            await process.wait()
        process.signal_group(signal.SIGKILL)
        writer = self._log_writer()
        write_rest(writer, process.rest())
        writer.close()
        return self._ended(process, run.started_at)

    def _not_adoptable(self, record: state.ContainerRecord, process: handles.Handle) -> str | None:
        """Why a process an earlier agent left cannot be adopted (None: it can)."""
        if not process.alive():
            return "it has exited"
        if not process.shim_alive():
            return "its shim is gone, so its exit status could not be known"
        if record.spec_hash != self.spec_hash:
            return "its spec changed"
        if record.run is not None and record.run.stdin:
            return "its stdin was a pipe from the earlier agent, closed with it"
        if not process.has_output():
            return "its output pipes are missing"
        return None

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

    def enter(self, argv: list[str], prepared: Prepared) -> list[str]:
        """``argv`` run where the container's process runs: in its mount namespace, if it
        has one. Raises the ``OSError`` an exec of a missing program would."""
        process = self.process
        if not self.pod.access.namespace or process is None or not argv:
            return argv
        incluster.check_executable(argv[0], prepared.env, prepared.cwd)
        return self.pod.access.enter(argv, process.pid, prepared.cwd)

    async def exec_in(self, command: list[str], timeout: float) -> int:
        """Run ``command`` in the container's environment (exec probes); its exit code."""
        prepared = self._prepared
        if prepared is None or not command:
            return 1
        argv = self.enter([prepared.mounts.rewrite(c) for c in command], prepared)
        process = await asyncio.create_subprocess_exec(
            *argv,
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
        if process is not None:
            process.signal_group(sig)

    def kill_soon(self, grace: float) -> None:
        """Stop the current run (a failed probe) without waiting for it here."""
        if self._killing is None or self._killing.done():
            self._killing = asyncio.create_task(self.kill(grace))

    async def kill(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; returns once the
        process has exited."""
        process = self.process
        if process is not None:
            await self._stop(process, grace)

    async def _stop(self, process: handles.Handle, grace: float) -> None:
        if process.finished:
            return
        process.signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), max(grace, 0.0))
        except TimeoutError:
            logger.info(
                "pod %s: container %s ignored SIGTERM for %.0fs: SIGKILL",
                self.pod.key,
                self.name,
                grace,
            )
            process.signal_group(signal.SIGKILL)
            await process.wait()

    # --- the restart loop ----------------------------------------------------------------

    async def loop(self, policy: str, sleep: Callable[[float], Awaitable[None]]) -> int:
        """Run until the restart policy says done (or the pod stops); the last exit code."""
        backoff = 0.0
        options = self.pod.runtime.options
        code = 0
        leftover, self.leftover = self.leftover, None
        if leftover is not None and leftover.done:
            # Done before the agent restarted: only its status is left to report.
            self.restart_count = leftover.restart_count
            self.status.update(leftover.status)
            self.done = True
            await self.pod.publish()  # in case the earlier agent died before it could
            terminated = (self.status.get("state") or {}).get("terminated") or {}
            return int(terminated.get("exitCode") or 0)
        while not self.pod.stopping:
            try:
                loop = asyncio.get_running_loop()
                began = loop.time()
                ended = await self.resume(leftover) if leftover is not None else None
                leftover = None
                code = (ended or await self.run_once())[0]
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
                self.done = True
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


def write_rest(writer: logs.LogWriter, rest: list[tuple[str, bytes]]) -> None:
    """Append output the shim saved (``handles.Handle.rest``) to a run's log, line by line."""
    for stream, data in rest:
        lines = data.split(b"\n")
        for line in lines[:-1]:
            writer.write(stream, line)
        if lines[-1]:
            writer.write(stream, lines[-1], partial=True)
