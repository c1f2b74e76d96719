"""What an agent leaves on its data directory for the next one: ``<pod dir>/state.json``.

One file per pod, rewritten atomically (a temporary file renamed over it) whenever one of its
containers starts, exits or changes status, mode 0600. It holds what cannot be asked of the
API server or of the processes themselves:

* the pod's host ports (the processes listen on them) and its grace period;
* per container: the hash of its spec (a changed container is replaced, not adopted), its
  restart count and last status, whether its restart policy is done with it, the terminated
  state of a run whose restart is still pending, and the run in progress (``RunRecord``:
  when it started, how it was started; its processes are named by the shim's ``pid`` file
  in the run directory, see ``shim``).

The environment of a run is not stored (it may hold secrets): an adopted process's is read
back from ``/proc/<pid>/environ``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
VERSION = 1


def spec_hash(container: Obj) -> str:
    """A digest of a container's spec: a different one means the container was changed."""
    return hashlib.sha256(orjson.dumps(container, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class RunRecord:
    """A container's run in progress: what exec needs to run commands beside it."""

    started_at: str
    stdin: bool
    argv: list[str]
    cwd: str
    root: str
    mounts: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerRecord:
    """One container of a pod (see the module docstring)."""

    init: bool
    spec_hash: str
    restart_count: int
    status: Obj
    done: bool = False
    last_exit: Obj | None = None
    run: RunRecord | None = None


@dataclass
class PodState:
    """One pod's state file."""

    uid: str
    namespace: str
    name: str
    grace: float
    ports_since: str
    host_ports: list[str] = field(default_factory=list)
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    numbers: dict[str, dict[str, int]] = field(default_factory=dict)
    containers: dict[str, ContainerRecord] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"version": VERSION, **asdict(self)})

    @classmethod
    def from_bytes(cls, raw: bytes) -> PodState:
        """Parse a state file; raises ``ValueError`` for anything else."""
        try:
            data = orjson.loads(raw)
            if data.pop("version", None) != VERSION:
                raise ValueError("unknown state file version")
            containers = {}
            for name, item in (data.pop("containers") or {}).items():
                run = item.pop("run", None)
                containers[str(name)] = ContainerRecord(
                    **item, run=RunRecord(**run) if run is not None else None
                )
            return cls(**data, containers=containers)
        except (TypeError, AttributeError, orjson.JSONDecodeError) as exc:
            raise ValueError(str(exc)) from exc


def save(path: Path, state: PodState) -> None:
    """Replace ``path`` with ``state`` atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(state.to_bytes())
    os.replace(temporary, path)


def load(path: Path) -> PodState | None:
    """The state in ``path``; None when there is none or it cannot be read."""
    try:
        return PodState.from_bytes(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable pod state %s: %s", path, exc)
        return None


def load_all(pods_dir: Path) -> dict[str, PodState]:
    """Pod uid → state, for every pod directory holding a state file."""
    found: dict[str, PodState] = {}
    for path in sorted(pods_dir.glob(f"*/{STATE_FILE}")):
        state = load(path)
        if state is not None and state.uid == path.parent.name:
            found[state.uid] = state
    return found


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
