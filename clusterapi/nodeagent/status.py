"""Pod status from container statuses, as upstream's kubelet computes it.

``pod_phase`` follows ``getPhase`` (pkg/kubelet/kubelet_pods.go); ``pod_status`` adds the
conditions PodReadyToStartContainers, Initialized, ContainersReady, Ready and PodScheduled with
upstream's reasons, keeping each condition's ``lastTransitionTime`` while its status holds.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def stamp() -> str:
    """Now, as a ``metav1.Time``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_phase(restart_policy: str, init: list[Obj], containers: list[Obj]) -> str:
    """The pod phase for these statuses (``getPhase``)."""
    for status in init:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is None or terminated.get("exitCode") != 0:
            if terminated is not None and restart_policy == "Never":
                return "Failed"
            return "Pending"
    waiting = running = stopped = succeeded = 0
    for status in containers:
        state = status.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif ((status.get("lastState") or {}).get("terminated")) is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if restart_policy == "Always":
            return "Running"
        if restart_policy == "OnFailure":
            return "Succeeded" if stopped == succeeded else "Running"
        return "Succeeded" if stopped == succeeded else "Failed"
    return "Pending"


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    condition: Obj = {
        "type": type_,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
    }
    if not ok and reason:
        condition["reason"] = reason
    if not ok and message:
        condition["message"] = message
    return condition


def pod_status(
    pod: Obj,
    init: list[Obj],
    containers: list[Obj],
    *,
    host_ip: str,
    pod_ip: str,
    start_time: str,
) -> Obj:
    """The full ``status`` an agent reports for ``pod`` (its previous status keeps
    transition times)."""
    # Runtimes keep mutating their status dicts: report a snapshot.
    init, containers = copy.deepcopy(init), copy.deepcopy(containers)
    spec = pod.get("spec") or {}
    policy = str(spec.get("restartPolicy") or "Always")
    phase = pod_phase(policy, init, containers)
    terminal = phase in ("Succeeded", "Failed")
    initialized = all(
        ((s.get("state") or {}).get("terminated") or {}).get("exitCode") == 0 for s in init
    )
    unready = [str(s.get("name")) for s in containers if not s.get("ready")]
    uninitialized = [
        str(s.get("name"))
        for s in init
        if ((s.get("state") or {}).get("terminated") or {}).get("exitCode") != 0
    ]
    sandbox = any(
        "waiting" not in (s.get("state") or {}) or s.get("lastState") for s in [*init, *containers]
    )
    if terminal:
        ready_reason, ready_message = "PodCompleted", ""
    else:
        ready_reason = "ContainersNotReady"
        ready_message = f"containers with unready status: [{' '.join(unready)}]"
    conditions = [
        _condition("PodReadyToStartContainers", sandbox and not terminal),
        _condition(
            "Initialized",
            initialized,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(uninitialized)}]",
        ),
        _condition("Ready", not unready and not terminal, ready_reason, ready_message),
        _condition("ContainersReady", not unready and not terminal, ready_reason, ready_message),
        _condition("PodScheduled", True),
    ]
    if terminal and initialized:
        conditions[1].pop("reason", None)
        conditions[1].pop("message", None)
    previous = {
        c.get("type"): c
        for c in (pod.get("status") or {}).get("conditions") or ()
        if isinstance(c, dict)
    }
    now = stamp()
    for condition in conditions:
        old = previous.get(condition["type"])
        if old is not None and old.get("status") == condition["status"]:
            condition["lastTransitionTime"] = old.get("lastTransitionTime") or now
        else:
            condition["lastTransitionTime"] = now
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": containers,
    }
    if init:
        status["initContainerStatuses"] = init
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    qos = (pod.get("status") or {}).get("qosClass")
    if qos:
        status["qosClass"] = qos
    return status
