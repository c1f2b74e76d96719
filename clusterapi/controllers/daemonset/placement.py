"""Where daemon pods run: automatic tolerations, node eligibility and pinning to a node.

Pure functions of a DaemonSet, a node and a pod (upstream ``pkg/controller/daemon/util``), plus
the per-node back-off for killing failed pods, kept in the shared cache.
"""

from __future__ import annotations

import copy
from datetime import datetime

from django.core.cache import cache

from clusterapi.controllers.base import Obj
from clusterapi.resources import registered as _kind
from clusterapi.resources.registry import Kind
from clusterapi.scheduler.snapshot import DO_NOT_SCHEDULE, NodeInfo, PodInfo, first_untolerated

COMPONENT = "daemonset-controller"
# Upstream's failedPodsBackoff: 1 s doubling to 15 min per (DaemonSet, node).
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 900.0

# The tolerations every daemon pod gets (``AddOrUpdateDaemonPodTolerations``): daemons stay on
# sick nodes and run on pressured or cordoned ones; no tolerationSeconds, so never evicted.
AUTO_TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def daemonset_kind() -> Kind:
    return _kind("apps/v1", "DaemonSet")


def node_kind() -> Kind:
    return _kind("v1", "Node")


# --- the daemon pod and where it may run ----------------------------------------------------------


def daemon_template(ds: Obj) -> Obj:
    """The DaemonSet's template with the automatic tolerations added."""
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    spec = template.setdefault("spec", {})
    tolerations = list(spec.get("tolerations") or ())
    wanted = list(AUTO_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE)
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    spec["tolerations"] = tolerations
    return template


def node_should_run(node: Obj, template: Obj) -> tuple[bool, bool]:
    """(should run a daemon pod, should keep one it runs) (``NodeShouldRunDaemonPod``)."""
    name = node["metadata"]["name"]
    spec = template.get("spec") or {}
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False, False
    pod = PodInfo({"metadata": {"name": "probe"}, "spec": spec})
    info = NodeInfo(node)
    if pod.required_node_affinity is not None and not pod.required_node_affinity.matches(info):
        return False, False
    if first_untolerated(info.taints, pod.tolerations, DO_NOT_SCHEDULE) is None:
        return True, True
    return False, first_untolerated(info.taints, pod.tolerations, ("NoExecute",)) is None


def pin_to_node(template: Obj, node_name: str) -> Obj:
    """The template with required node affinity for exactly ``node_name``.

    The node already passed the template's own required terms, so they are replaced, as
    upstream's ``ReplaceDaemonSetPodNodeNameNodeAffinity`` does.
    """
    pinned = copy.deepcopy(template)
    spec = pinned.setdefault("spec", {})
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
        ]
    }
    return pinned


def target_node(pod: Obj) -> str:
    """The node a daemon pod is for: where it is bound, else its affinity's node."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or ():
        for field_ in term.get("matchFields") or ():
            values = field_.get("values") or []
            if field_.get("key") == "metadata.name" and field_.get("operator") == "In" and values:
                return str(values[0])
    return ""


def oldest_first(pod: Obj) -> tuple[bool, str, str]:
    # ``podByCreationTimestampAndPhase``: scheduled pods first, then by age, then by name.
    meta = pod["metadata"]
    scheduled = bool((pod.get("spec") or {}).get("nodeName"))
    return (not scheduled, str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))


def backoff(ds: Obj, node_name: str, now: datetime) -> float | None:
    """Seconds to wait before killing another failed pod on the node; None: go ahead.

    Kept in the shared cache, so every worker sees the same back-off; going ahead records
    the attempt and doubles the next wait (reset after twice the maximum of quiet).
    """
    key = f"berth:daemonset-backoff:{ds['metadata']['uid']}:{node_name}"
    stamp = now.timestamp()
    entry = cache.get(key)
    delay = BACKOFF_INITIAL_SECONDS
    if entry is not None:
        last, previous = entry
        remaining = last + previous - stamp
        if remaining > 0:
            return float(remaining)
        if stamp - last <= 2 * BACKOFF_MAX_SECONDS:
            delay = min(previous * 2, BACKOFF_MAX_SECONDS)
    cache.set(key, (stamp, delay), int(2 * BACKOFF_MAX_SECONDS))
    return None
