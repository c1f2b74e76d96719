"""scheduling.k8s.io/v1 PriorityClass: a named pod priority, and the Priority admission rule.

A class maps a name to an integer ``value`` (higher is more important), may be the
``globalDefault`` (for pods naming no class) and says whether its pods may preempt others
(``preemptionPolicy``). Rules, as upstream:

* names starting ``system-`` are reserved for the two built-in classes
  (``system-cluster-critical`` 2000000000, ``system-node-critical`` 2000001000); other
  classes may not exceed 1000000000;
* ``value`` and ``preemptionPolicy`` cannot change; only one class may be the global
  default (403 naming the existing one).

``admit_pod`` is upstream's Priority admission plugin for pods, run from the Pod kind's
defaulting when a pod is created: ``spec.priorityClassName`` resolves to ``spec.priority``
and ``spec.preemptionPolicy`` (the global default class when none is named; priority 0 and
``PreemptLowerPriority`` when there is none). An unknown class, or a ``priority`` /
``preemptionPolicy`` in the pod that disagrees with the class, is 403 Forbidden.
"""

from __future__ import annotations

from typing import Any

from clusterapi.core.errors import ApiError, Cause, invalid
from clusterapi.resources.registry import Kind, Obj

HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_PREFIX = "system-"
# The built-in classes upstream's API server creates at start-up.
SYSTEM_PRIORITY_CLASSES: dict[str, int] = {
    "system-node-critical": 2_000_001_000,
    "system-cluster-critical": 2_000_000_000,
}
_SYSTEM_DESCRIPTIONS = {
    "system-node-critical": "Used for system critical pods that must not be moved from their "
    "current node.",
    "system-cluster-critical": "Used for system critical pods that must run in the cluster, "
    "but can be moved to another node if necessary.",
}


def _defaults(obj: Obj) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def _forbidden_field(obj: Obj, path: str, detail: str) -> ApiError:
    name = str((obj.get("metadata") or {}).get("name", ""))
    return invalid(KIND, name, [Cause("FieldValueForbidden", f"Forbidden: {detail}", path)])


def _validate(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    name = str((obj.get("metadata") or {}).get("name", ""))
    value = obj.get("value")
    if old is None:
        if name.startswith(SYSTEM_PREFIX):
            if SYSTEM_PRIORITY_CLASSES.get(name) != value or obj.get("globalDefault"):
                raise _forbidden_field(
                    obj,
                    "metadata.name",
                    "priority class names with 'system-' prefix are reserved for system use "
                    f"only. error: {name!r} is not a known system priority class",
                )
        elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
            raise _forbidden_field(
                obj,
                "value",
                "maximum allowed value of a user defined priority is "
                f"{HIGHEST_USER_DEFINABLE_PRIORITY}",
            )
    else:
        if value != old.get("value"):
            raise _forbidden_field(obj, "value", "may not be changed in an update.")
        if obj.get("preemptionPolicy") != old.get("preemptionPolicy"):
            return [("preemptionPolicy", str(obj.get("preemptionPolicy")), "field is immutable")]
    if obj.get("globalDefault"):
        current = default_class()
        if current is not None and current["metadata"]["name"] != name:
            raise ApiError(
                403,
                "Forbidden",
                f'{KIND.qualified_plural} "{name}" is forbidden: PriorityClass '
                f"{current['metadata']['name']} is already marked as default. Only one "
                "default can exist",
                name=name,
                group=KIND.group,
                kind=KIND.plural,
            )
    return []


KIND = Kind(
    group="scheduling.k8s.io",
    version="v1",
    kind="PriorityClass",
    plural="priorityclasses",
    namespaced=False,
    short_names=("pc",),
    has_status=False,
    defaults=_defaults,
    validate=_validate,
)


# --- lookups and the Priority admission rule -------------------------------------------------


def _classes() -> list[Obj]:
    # Every new pod asks; the classes change rarely (``clusterapi.store.snapshots``).
    from clusterapi.store import snapshots

    return snapshots.of(KIND).objects()


def default_class() -> Obj | None:
    """The global default class (the lowest value, should a race have made two)."""
    found: Obj | None = None
    for pc in _classes():
        if pc.get("globalDefault") and (found is None or pc.get("value", 0) < found["value"]):
            found = pc
    return found


def get_class(name: str) -> Obj | None:
    from clusterapi import store

    try:
        return store.get(KIND, "", name)
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
    if name in SYSTEM_PRIORITY_CLASSES:
        # Built in even before ensure_system_classes() has stored it.
        return system_class(name)
    return None


def system_class(name: str) -> Obj:
    return {
        "apiVersion": KIND.api_version,
        "kind": KIND.kind,
        "metadata": {"name": name},
        "value": SYSTEM_PRIORITY_CLASSES[name],
        "description": _SYSTEM_DESCRIPTIONS[name],
        "preemptionPolicy": "PreemptLowerPriority",
    }


def ensure_system_classes() -> None:
    """Create the built-in classes if missing (idempotent; for start-up bootstrap)."""
    from clusterapi import store

    for name in SYSTEM_PRIORITY_CLASSES:
        try:
            store.create(KIND, system_class(name), field_manager="berth-bootstrap")
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise


def _pod_forbidden(pod: Obj, detail: str) -> ApiError:
    name = str((pod.get("metadata") or {}).get("name", ""))
    return ApiError(
        403, "Forbidden", f'pods "{name}" is forbidden: {detail}', name=name, kind="pods"
    )


def admit_pod(pod: Obj) -> None:
    """Resolve a new pod's priority from its class (see the module docstring)."""
    spec: dict[str, Any] = pod.setdefault("spec", {})
    class_name = spec.get("priorityClassName") or ""
    policy: str | None
    if not class_name:
        found = default_class()
        if found is not None:
            spec["priorityClassName"] = found["metadata"]["name"]
            priority = int(found.get("value") or 0)
            policy = found.get("preemptionPolicy") or "PreemptLowerPriority"
        else:
            priority, policy = 0, "PreemptLowerPriority"
    else:
        found = get_class(str(class_name))
        if found is None:
            raise _pod_forbidden(pod, f"no PriorityClass with name {class_name} was found")
        priority = int(found.get("value") or 0)
        policy = found.get("preemptionPolicy") or "PreemptLowerPriority"
    given = spec.get("priority")
    if given is not None and given != priority:
        raise _pod_forbidden(
            pod,
            f"the integer value of priority ({given}) must not be provided in pod spec; "
            f"priority admission controller computed {priority} from the given PriorityClass "
            "name",
        )
    spec["priority"] = priority
    given_policy = spec.get("preemptionPolicy")
    if given_policy is not None and given_policy != policy:
        raise _pod_forbidden(
            pod,
            f"the string value of PreemptionPolicy ({given_policy}) must not be provided in "
            f"pod spec; priority admission controller computed {policy} from the given "
            "PriorityClass name",
        )
    spec["preemptionPolicy"] = policy
