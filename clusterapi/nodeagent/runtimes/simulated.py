"""The simulated runtime (kwok-style): containers that exist only as status.

Nothing runs. A pod's containers are "created" after a start delay, run (ready at once), and,
for pods whose ``restartPolicy`` is ``Never`` or ``OnFailure`` and which have a duration,
exit 0 after it. Failure injection makes a start fail with exit code 1 (reason ``Error``):
``Never`` pods then fail, the others restart after CrashLoopBackOff (10 s doubling to 300 s,
scaled by ``backoff_base``). Per pod, annotations override the agent-wide options:

* ``sim.berth.dev/start-delay``: seconds before the containers start;
* ``sim.berth.dev/duration``: seconds a container runs before it exits;
* ``sim.berth.dev/fail``: ``"true"`` makes every start fail;
* ``sim.berth.dev/exit-code``: the exit code of a failing start (default 1).

The runtime reports every change through the ``report`` callback the agent passes; the agent
turns container statuses into the pod's phase and conditions (``clusterapi.nodeagent.status``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
Report = Callable[[list[Obj], list[Obj]], Awaitable[None]]

ANNOTATION_PREFIX = "sim.berth.dev/"
RUNTIME_VERSION = "berth-simulated://0.1.0"
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimulatedOptions:
    """Agent-wide behaviour of simulated pods."""

    start_delay: float = 0.5
    failure_rate: float = 0.0
    pod_duration: float | None = None
    backoff_base: float = 1.0
    seed: int | None = None


class SimulatedRuntime:
    """Drives pods through Pending → Running → (Succeeded | Failed) without running anything."""

    name = "simulated"
    version = RUNTIME_VERSION

    def __init__(self, options: SimulatedOptions | None = None) -> None:
        self.options = options or SimulatedOptions()
        self._random = random.Random(self.options.seed)  # noqa: S311 - simulation, not crypto

    def _annotation(self, pod: Obj, key: str) -> str | None:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        value = annotations.get(ANNOTATION_PREFIX + key)
        return str(value) if value is not None else None

    def _float(self, pod: Obj, key: str, default: float | None) -> float | None:
        value = self._annotation(pod, key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            return default

    def _fails(self, pod: Obj) -> bool:
        forced = self._annotation(pod, "fail")
        if forced is not None:
            return forced.lower() == "true"
        rate = self.options.failure_rate
        return rate > 0 and self._random.random() < rate

    @staticmethod
    def _container_id(pod: Obj, name: str, restarts: int) -> str:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        return f"berth-sim://{uid[:12]}-{name}-{restarts}"

    @staticmethod
    def _base(container: Obj) -> Obj:
        image = str(container.get("image") or "")
        return {
            "name": container.get("name"),
            "image": image,
            "imageID": f"sim://{image}",
            "ready": False,
            "started": False,
            "restartCount": 0,
        }

    async def run_pod(self, pod: Obj, report: Report) -> None:
        """Run ``pod`` until its containers finish for good (returns) or it is cancelled."""
        spec = pod.get("spec") or {}
        policy = str(spec.get("restartPolicy") or "Always")
        init = [self._base(c) for c in spec.get("initContainers") or () if isinstance(c, dict)]
        main = [self._base(c) for c in spec.get("containers") or () if isinstance(c, dict)]
        for status in init:
            status["state"] = {"waiting": {"reason": "PodInitializing"}}
        for status in main:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        await report(init, main)
        delay = self._float(pod, "start-delay", self.options.start_delay) or 0.0
        if delay > 0:
            await asyncio.sleep(delay)
        for status in init:
            now = _stamp()
            status["state"] = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": now,
                    "finishedAt": now,
                    "containerID": self._container_id(pod, str(status["name"]), 0),
                }
            }
            status["started"] = False
            status["ready"] = True
        duration = self._float(pod, "duration", self.options.pod_duration)
        if policy == "Always":
            duration = None
        exit_code = int(self._float(pod, "exit-code", 1) or 1)
        backoff = BACKOFF_INITIAL * self.options.backoff_base
        while True:
            started = _stamp()
            if self._fails(pod):
                for status in main:
                    container_id = self._container_id(
                        pod, str(status["name"]), int(status["restartCount"])
                    )
                    terminated = {
                        "exitCode": exit_code,
                        "reason": "Error",
                        "startedAt": started,
                        "finishedAt": _stamp(),
                        "containerID": container_id,
                    }
                    status["ready"] = False
                    status["started"] = False
                    status["containerID"] = container_id
                    if policy == "Never":
                        status["state"] = {"terminated": terminated}
                    else:
                        status["lastState"] = {"terminated": terminated}
                        status["state"] = {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": f"back-off {int(backoff)}s restarting failed "
                                f"container={status['name']} pod={pod['metadata'].get('name')}",
                            }
                        }
                await report(init, main)
                if policy == "Never":
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX * self.options.backoff_base)
                for status in main:
                    status["restartCount"] = int(status["restartCount"]) + 1
                continue
            for status in main:
                container_id = self._container_id(
                    pod, str(status["name"]), int(status["restartCount"])
                )
                status["containerID"] = container_id
                status["state"] = {"running": {"startedAt": started}}
                status["ready"] = True
                status["started"] = True
            await report(init, main)
            if duration is None:
                await asyncio.Event().wait()  # runs until the pod is stopped
                return
            await asyncio.sleep(duration)
            for status in main:
                status["state"] = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": started,
                        "finishedAt": _stamp(),
                        "containerID": status["containerID"],
                    }
                }
                status["ready"] = False
                status["started"] = False
            await report(init, main)
            return

    async def stop_pod(self, pod: Obj, grace_seconds: float) -> None:
        """Stop a pod's containers: nothing to stop in a simulation."""
        return None
