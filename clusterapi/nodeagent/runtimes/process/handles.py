"""A container's processes as the agent holds them: started through the shim, or adopted.

``launch`` prepares a run directory (``shim`` describes its files), starts the shim and waits
for its report: a ``Handle`` on the running container, or ``StartError``. ``find`` makes the
same ``Handle`` from a run directory an earlier agent left, through the shim's ``pid`` file.
Either way the container's end is the shim's (``wait``: our child's exit, or, for an adopted
shim, a pidfd of it), its exit status is read from the shim's ``exit`` file, and its output
is read from the run's FIFOs (``output``).

Processes are named by ``Identity`` (pid, start time in ticks since boot, boot id): a
process's group is signalled only while its pid does not name another process (a pid is not
reused while a group of that number exists, so a pid held by another process means the
group is gone), and never after a reboot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from clusterapi.nodeagent.runtimes.process import shim

logger = logging.getLogger(__name__)

SHIM = Path(shim.__file__).resolve()
UNKNOWN_EXIT_CODE = 137
POLL_SECONDS = 0.2
STREAMS = shim.STREAMS


class StartError(Exception):
    """The container's program could not be started (reported as ``StartError``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Identity:
    """One process for the life of the machine: its pid, start time and boot."""

    pid: int
    start: int
    boot: str

    @classmethod
    def of(cls, pid: int, *, zombie: bool = False) -> Identity | None:
        """The process with ``pid`` now (a zombie only with ``zombie``)."""
        found = shim.identity(pid, zombie=zombie)
        return cls(found[0], found[1], shim.boot_id()) if found is not None else None

    def alive(self) -> bool:
        """Whether this very process still runs (not another one given its pid)."""
        return Identity.of(self.pid) == self


async def wait_gone(process: Identity) -> None:
    """Return once ``process`` (not necessarily our child) has exited."""
    try:
        descriptor = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return
    except OSError:
        descriptor = -1  # no pidfd (a kernel before 5.3): poll
    try:
        # Checked once the pidfd is open: it then refers to this very process, not to one
        # started later with the same pid.
        if not process.alive():
            return
        if descriptor < 0:
            while process.alive():
                await asyncio.sleep(POLL_SECONDS)
            return
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(descriptor, readable)
        try:
            await gone
        finally:
            loop.remove_reader(descriptor)
    finally:
        if descriptor >= 0:
            os.close(descriptor)


class Handle:
    """One run of a container: the container process and its shim."""

    def __init__(
        self,
        run_dir: Path,
        container: Identity | None,
        shim_process: Identity | None,
        process: asyncio.subprocess.Process | None = None,
    ) -> None:
        self.dir = run_dir
        self.container = container
        self.shim = shim_process
        self.pid = container.pid if container is not None else 0
        self.returncode: int | None = None
        self.error = ""  # why the program could not be started
        self.lost = False  # how it ended is unknown (its shim died before it)
        self._process = process  # the shim, when this agent started it
        self._held: list[int] = []  # FIFO read ends opened before the shim started
        self._transports: list[asyncio.BaseTransport] = []

    @property
    def stdin(self) -> asyncio.StreamWriter | None:
        """The container's stdin (``stdin: true``), held by the agent that started it."""
        return self._process.stdin if self._process is not None else None

    @property
    def finished(self) -> bool:
        return self.returncode is not None

    def alive(self) -> bool:
        """Whether the container process still runs."""
        return self.container is not None and self.container.alive()

    def shim_alive(self) -> bool:
        if self._process is not None:
            return self._process.returncode is None
        return self.shim is not None and self.shim.alive()

    def has_output(self) -> bool:
        """Whether the run's FIFOs are there to read its output from."""
        return all((self.dir / name).is_fifo() for name in STREAMS)

    async def wait(self) -> int:
        """Wait for the container's end; its exit code (``finished`` from then on)."""
        if self.returncode is None:
            if self._process is not None:
                await self._process.wait()
            elif self.shim is not None:
                await wait_gone(self.shim)
            if self.container is not None and self.container.alive():
                # Its shim was killed: follow the container itself (how it ends is lost).
                await wait_gone(self.container)
            self._read_exit()
        assert self.returncode is not None
        return self.returncode

    def _read_exit(self) -> None:
        try:
            self.returncode, self.error = shim.parse_exit((self.dir / "exit").read_text())
        except (OSError, ValueError):
            self.returncode, self.lost = UNKNOWN_EXIT_CODE, True

    def signal_group(self, sig: int) -> None:
        """Signal the container's process group (what it left behind too, once it exited)
        unless its pid names another process now, or the machine rebooted since."""
        container = self.container
        if container is None or container.boot != shim.boot_id():
            return
        current = Identity.of(container.pid, zombie=True)
        if current is not None and current != container:
            return  # the pid was reused: the group is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(container.pid, sig)

    def environment(self) -> dict[str, str]:
        """The container's environment as it was started (``/proc/<pid>/environ``)."""
        if self.container is None:
            return {}
        try:
            raw = Path(f"/proc/{self.pid}/environ").read_bytes()
        except OSError:
            return {}
        if not self.container.alive():
            return {}  # read from a process that took its pid
        env = {}
        for item in raw.split(b"\0"):
            name, sep, value = item.partition(b"=")
            if sep:
                env[name.decode(errors="surrogateescape")] = value.decode(errors="surrogateescape")
        return env

    async def output(self) -> tuple[asyncio.StreamReader, asyncio.StreamReader]:
        """Readers of the container's stdout and stderr, to their end of file."""
        loop = asyncio.get_running_loop()
        readers = []
        held, self._held = self._held, []
        for index, name in enumerate(STREAMS):
            descriptor = (
                held[index] if held else os.open(self.dir / name, os.O_RDONLY | os.O_NONBLOCK)
            )
            reader = asyncio.StreamReader()
            transport, _ = await loop.connect_read_pipe(
                lambda reader=reader: asyncio.StreamReaderProtocol(reader),  # type: ignore[misc]
                os.fdopen(descriptor, "rb", buffering=0),
            )
            self._transports.append(transport)
            readers.append(reader)
        return readers[0], readers[1]

    def rest(self) -> list[tuple[str, bytes]]:
        """Output the shim saved because no agent was reading when the container exited."""
        found = []
        for name in STREAMS:
            path = self.dir / f"{name}.rest"
            with contextlib.suppress(FileNotFoundError):
                found.append((name, path.read_bytes()))
                path.unlink()
        return found

    def close(self) -> None:
        """Stop reading (the shim keeps its own read ends while the container runs)."""
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        for descriptor in self._held:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._held.clear()


def find(run_dir: Path, process: asyncio.subprocess.Process | None = None) -> Handle | None:
    """The run an agent started in ``run_dir``; None when its shim never started a program."""
    try:
        boot, shim_process, container = shim.parse_pids((run_dir / "pid").read_text())
    except (OSError, ValueError):
        if (run_dir / "exit").exists():
            return Handle(run_dir, None, None)  # its program could not be started
        return None
    return Handle(run_dir, Identity(*container, boot), Identity(*shim_process, boot), process)


async def _read_report(descriptor: int) -> tuple[str, str]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(descriptor, "rb", buffering=0)
    )
    try:
        line = await reader.readline()
    finally:
        transport.close()
    word, _, rest = line.decode(errors="replace").strip().partition(" ")
    return word, rest


async def launch(
    run_dir: Path, argv: list[str], env: dict[str, str], cwd: Path, *, stdin: bool
) -> Handle:
    """Start ``argv`` through a shim in a fresh ``run_dir``; raises ``StartError``."""
    if run_dir.exists():
        await asyncio.to_thread(shutil.rmtree, run_dir, True)
    run_dir.mkdir(parents=True)
    for name in STREAMS:
        os.mkfifo(run_dir / name, 0o600)
    descriptor = os.open(run_dir / "spec", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as spec_file:
        spec_file.write(shim.encode_spec(argv, env))
    # Our read ends first: a FIFO opened for writing needs a reader (and then never blocks).
    held = [os.open(run_dir / name, os.O_RDONLY | os.O_NONBLOCK) for name in STREAMS]
    writers = [os.open(run_dir / name, os.O_WRONLY) for name in STREAMS]
    report, report_writer = os.pipe()
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            str(SHIM),
            str(run_dir),
            str(report_writer),
            cwd=cwd,
            # Only PATH: the shim looks the program up on it; the container's environment
            # goes through the spec file.
            env={"PATH": env.get("PATH") or os.defpath},
            stdin=pipe if stdin else devnull,
            stdout=writers[0],
            stderr=writers[1],
            pass_fds=(report_writer,),
            start_new_session=True,
        )
    except OSError as exc:
        for descriptor in (*held, report):
            os.close(descriptor)
        raise StartError(f'exec: "{argv[0]}": {exc.strerror or exc}') from exc
    finally:
        for descriptor in (*writers, report_writer):
            os.close(descriptor)
    reading = asyncio.ensure_future(_read_report(report))
    try:
        word, detail = await asyncio.shield(reading)
    except asyncio.CancelledError:
        # Stopped while the shim starts the container: it must not run on unwatched.
        word, detail = await reading
        started = find(run_dir, process) if word == "pid" else None
        if started is not None:
            started.signal_group(signal.SIGKILL)
        await process.wait()
        for descriptor in held:
            os.close(descriptor)
        raise
    handle = find(run_dir, process) if word == "pid" else None
    if handle is None or handle.container is None:
        await process.wait()
        for descriptor in held:
            os.close(descriptor)
        if word == "error":
            raise StartError(detail)
        raise StartError(f"the container shim exited with code {process.returncode}")
    handle._held = held
    return handle
