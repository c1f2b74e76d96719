"""core/v1 Pod: one or more containers scheduled together onto a node."""

from __future__ import annotations

from datetime import UTC, datetime

from clusterapi.resources import defaults
from clusterapi.resources.kinds import priorityclass
from clusterapi.resources.registry import Kind, Obj


def _qos_class(spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' requests and limits."""
    containers = [c for c in spec.get("containers") or () if isinstance(c, dict)]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"


def _defaults(obj: Obj) -> None:
    defaults.pod_spec(defaults.spec_of(obj))
    status = defaults.status_of(obj)
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos_class(obj["spec"]))
    if not (obj.get("metadata") or {}).get("resourceVersion"):
        # On create only: upstream's Priority admission resolves spec.priorityClassName.
        priorityclass.admit_pod(obj)
        # The service account is defaulted (and its token mounted) by admission:
        # clusterapi.admission.serviceaccount.
        _default_toleration_seconds(obj["spec"])
    _mark_scheduled(obj["spec"], status)


# The DefaultTolerationSeconds admission plugin's defaults (its flags' defaults, 300 s).
DEFAULT_TOLERATION_SECONDS = 300
_DEFAULT_TOLERATION_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def _default_toleration_seconds(spec: Obj) -> None:
    """DefaultTolerationSeconds: tolerate not-ready and unreachable (NoExecute) for 300 s,
    unless the pod already tolerates that taint (or every NoExecute taint)."""
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    for key in _DEFAULT_TOLERATION_TAINTS:
        covered = False
        for toleration in tolerations:
            if not isinstance(toleration, dict):
                continue
            if toleration.get("effect") not in (None, "", "NoExecute"):
                continue
            wildcard = (
                toleration.get("key") in (None, "") and toleration.get("operator") == "Exists"
            )
            if wildcard or toleration.get("key") == key:
                covered = True
        if not covered:
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    spec["tolerations"] = tolerations


def _mark_scheduled(spec: Obj, status: Obj) -> None:
    """A pod with a node is scheduled: binding sets ``PodScheduled=True`` in its own write,
    as upstream's binding storage does (and as a kubelet reports for pods created bound)."""
    if not spec.get("nodeName"):
        return
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        conditions = status["conditions"] = []
    scheduled = {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for i, condition in enumerate(conditions):
        if isinstance(condition, dict) and condition.get("type") == "PodScheduled":
            if condition.get("status") != "True":
                conditions[i] = scheduled
            return
    conditions.append(scheduled)


def _graceful(obj: Obj, grace: int | None) -> bool:
    """A pod bound to a node gets its grace period to stop; its node agent then removes it."""
    spec = obj.get("spec") or {}
    if grace is None:
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
    if (
        not spec.get("nodeName")
        or grace <= 0
        or (obj.get("status") or {}).get("phase")
        in (
            "Succeeded",
            "Failed",
        )
    ):
        return False
    obj["metadata"]["deletionGracePeriodSeconds"] = grace
    return True


def _finalized(obj: Obj) -> bool:
    # Removing a graceful pod's last finalizer does not remove the pod: the node agent's
    # delete with gracePeriodSeconds=0 does, once the containers have stopped.
    return not (obj.get("spec") or {}).get("nodeName")


KIND = Kind(
    group="",
    version="v1",
    kind="Pod",
    plural="pods",
    short_names=("po",),
    categories=("all",),
    subresources=("status", "binding", "eviction", "log"),
    delete_returns_object=True,
    field_selectors={
        "spec.nodeName": lambda o: str(o.get("spec", {}).get("nodeName", "")),
        "spec.restartPolicy": lambda o: str(o.get("spec", {}).get("restartPolicy", "")),
        "spec.schedulerName": lambda o: str(o.get("spec", {}).get("schedulerName", "")),
        "spec.serviceAccountName": lambda o: str(o.get("spec", {}).get("serviceAccountName", "")),
        "spec.hostNetwork": lambda o: str(
            bool(o.get("spec", {}).get("hostNetwork", False))
        ).lower(),
        "status.phase": lambda o: str(o.get("status", {}).get("phase", "")),
        "status.podIP": lambda o: str(o.get("status", {}).get("podIP", "")),
        "status.nominatedNodeName": lambda o: str(o.get("status", {}).get("nominatedNodeName", "")),
    },
    defaults=_defaults,
    graceful=_graceful,
    finalized=_finalized,
)
