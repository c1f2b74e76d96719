"""The container shim: the parent of one container process, so that it can outlive the agent.

A process whose parent dies is reparented, and nobody can learn its exit status any more: an
agent that adopted such a process after a restart could see it end, not how. So the agent
never starts a container directly. It runs this small program (``python -I -S shim.py <run
dir> <report fd>``, in a session of its own), which starts the container and stays its
parent until it exits, whether an agent is still there or not: what containerd's shim or
conmon are to the kubelet. It imports only C modules of the standard library (no ``json``,
no ``signal``: they would double its memory, about 3 MB of its own per container).

The run directory (``<pod dir>/run/<container>``) is the whole interface:

* ``spec`` (written by the agent, mode 0600, removed once read): the program and its
  environment (``encode_spec``). They travel in a file rather than in the shim's own argv
  and environment because the environment may hold secrets and Python adds to its own
  environment at start (locale coercion): the container gets exactly what its spec says.
* ``stdout`` and ``stderr``: FIFOs. The agent hands the shim their write ends as its standard
  output and error, which the container inherits; the agent reads them into the log files
  (``logs``), and a new agent opens them again by name. The shim holds a read end of each
  while the container runs, so that with no agent reading, output waits in the pipe (64 KiB;
  then the container blocks on its next write until an agent drains it) instead of killing
  the container with SIGPIPE.
* ``pid`` (written atomically once the container runs): the boot id, then pid and start time
  (clock ticks since boot, ``/proc/<pid>/stat`` field 22) of the shim and of the container
  (``parse_pids``). A pid with its start time names one process for the whole life of the
  machine, so a pid the kernel gave to another process is never mistaken for the container.
* ``exit`` (written atomically when the container exits): its exit code (128 + the signal for
  a signalled process, as a shell reports it), then, when the program could not be started,
  why (``parse_exit``).
* ``stdout.rest``/``stderr.rest``: output still in a pipe nobody read when the container
  exited (its agent was down). The shim waits ``LINGER`` seconds for a reader first; the
  next agent appends what it finds to the run's log.

The container is started with ``posix_spawnp`` in a new session (so the agent can signal its
whole process group, and the shim, in another group, is not hit), with SIGPIPE and SIGXFSZ
back to their defaults (Python ignores them, and ignored signals are inherited), its program
looked up on the ``PATH`` the agent gives the shim (the container's own). The shim then
reports ``pid <N>`` or ``error <why>`` on the report pipe and points its own standard
streams at ``/dev/null``, so that only the container holds the FIFOs and its stdin.
"""

from __future__ import annotations

import fcntl
import os
import sys
import termios
import time

# The C module behind ``signal``: the same numbers without importing ``enum``.
from _signal import SIGPIPE, SIGXFSZ

BOOT_ID = "/proc/sys/kernel/random/boot_id"
START_ERROR_CODE = 128
LINGER = 0.1
MAX_REST = 1 << 20
STREAMS = ("stdout", "stderr")

Identity = tuple[int, int]  # pid, start ticks


def boot_id() -> str:
    """This boot of the machine (pids and start ticks start over at each boot)."""
    try:
        with open(BOOT_ID) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def identity(pid: int, *, zombie: bool = False) -> Identity | None:
    """(pid, start ticks) of a running process, or None: no such process, or a zombie (it
    has exited; only its parent's wait is missing), unless ``zombie``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses.
    fields = raw[raw.rfind(b")") + 2 :].split()
    if len(fields) < 20 or (fields[0] in (b"Z", b"X") and not zombie):
        return None
    return pid, int(fields[19])


# --- the files, written by one side and read by the other -----------------------------------


def encode_spec(argv: list[str], env: dict[str, str]) -> bytes:
    """``<argc>\\0<arg>\\0...<name>=<value>\\0...``: NUL cannot occur in either."""
    items = [str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
    return b"".join(os.fsencode(item) + b"\0" for item in items)


def decode_spec(raw: bytes) -> tuple[list[str], dict[str, str]]:
    items = [os.fsdecode(item) for item in raw.split(b"\0")[:-1]]
    count = int(items[0])
    env = {}
    for item in items[1 + count :]:
        name, _, value = item.partition("=")
        env[name] = value
    return items[1 : 1 + count], env


def parse_pids(text: str) -> tuple[str, Identity, Identity]:
    """The ``pid`` file: (boot id, shim, container); raises ``ValueError``."""
    boot, shim_pid, shim_start, pid, start = text.split()
    return boot, (int(shim_pid), int(shim_start)), (int(pid), int(start))


def parse_exit(text: str) -> tuple[int, str]:
    """The ``exit`` file: (exit code, why it could not start or ""); raises ``ValueError``."""
    code, _, error = text.partition("\n")
    return int(code), error.strip()


def write_atomic(path: str, text: str) -> None:
    """Write ``path`` so that a reader sees the old file or the whole new one."""
    temporary = f"{path}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


# --- the shim ---------------------------------------------------------------------------------


def _unread(descriptor: int) -> int:
    size = bytearray(4)
    try:
        fcntl.ioctl(descriptor, termios.FIONREAD, size)
    except OSError:
        return 0
    return int.from_bytes(size, sys.byteorder)


def _keep_unread(run_dir: str, held: list[int]) -> None:
    """Save what is still in the pipes once the container is gone: closing the last read
    end would drop it. A reading agent takes it within ``LINGER``; else it goes to a file."""
    if not any(_unread(d) for d in held):
        return
    time.sleep(LINGER)
    for name, descriptor in zip(STREAMS, held, strict=True):
        chunks: list[bytes] = []
        size = 0
        while size < MAX_REST and _unread(descriptor):
            try:
                chunk = os.read(descriptor, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if chunks:
            with open(os.path.join(run_dir, f"{name}.rest"), "ab") as rest:
                rest.write(b"".join(chunks))


def _report(descriptor: int, line: str) -> None:
    try:  # noqa: SIM105 - contextlib would cost the shim memory (see the docstring)
        os.write(descriptor, line.encode(errors="replace") + b"\n")
    except OSError:
        pass  # the agent is gone: the pid file tells the next one
    os.close(descriptor)


def main(argv: list[str]) -> int:
    run_dir, report = argv[1], int(argv[2])
    os.set_inheritable(report, False)  # the container must not hold it
    spec_path = os.path.join(run_dir, "spec")
    with open(spec_path, "rb") as handle:
        program, env = decode_spec(handle.read())
    os.unlink(spec_path)
    # Opened before the container starts: from then on its output never meets a pipe
    # without a reader. O_CLOEXEC (Python's default): the container does not inherit them.
    held = [os.open(os.path.join(run_dir, s), os.O_RDONLY | os.O_NONBLOCK) for s in STREAMS]
    try:
        pid = os.posix_spawnp(program[0], program, env, setsid=True, setsigdef=(SIGPIPE, SIGXFSZ))
    except OSError as exc:
        why = f'exec: "{program[0]}": {exc.strerror or exc}'
        write_atomic(os.path.join(run_dir, "exit"), f"{START_ERROR_CODE}\n{why}\n")
        _report(report, f"error {why}")
        return 0
    me = identity(os.getpid())
    # A container that is already gone is still a zombie here (not yet waited for).
    child = identity(pid, zombie=True)
    if me is not None and child is not None:
        pids = f"{boot_id()} {me[0]} {me[1]} {child[0]} {child[1]}\n"
        write_atomic(os.path.join(run_dir, "pid"), pids)
    _report(report, f"pid {pid}")
    null = os.open(os.devnull, os.O_RDWR)
    for descriptor in (0, 1, 2):
        os.dup2(null, descriptor)
    os.close(null)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    write_atomic(os.path.join(run_dir, "exit"), f"{128 - code if code < 0 else code}\n")
    _keep_unread(run_dir, held)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
