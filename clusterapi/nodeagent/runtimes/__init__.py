"""Container runtimes of the node agent: ``process`` (local processes) and ``simulated``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

Obj = dict[str, Any]
Report = Callable[[list[Obj], list[Obj]], Awaitable[None]]


class Runtime(Protocol):
    """What the agent needs from a runtime: run a pod (reporting container statuses) and
    stop it."""

    name: str
    version: str

    async def run_pod(self, pod: Obj, report: Report) -> None:
        """Run ``pod``; call ``report(init_statuses, container_statuses)`` on every change;
        return once its containers are finished for good."""
        ...

    async def stop_pod(self, pod: Obj, grace_seconds: float) -> None:
        """Stop ``pod``'s containers within ``grace_seconds``."""
        ...
