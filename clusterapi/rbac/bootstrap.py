"""The default RBAC policy, and keeping every instance's copy of it up to date.

Role
----
``bootstrap-policy.yaml`` beside this module is the golden file of Berth's default
ClusterRoles and ClusterRoleBindings (see its header for the notation): ``cluster-admin``,
the aggregated ``admin``/``edit``/``view`` and the ``system:aggregate-to-*`` roles that feed
them, the discovery and component roles, and one ``system:controller:*`` role per control
loop. ``cluster_roles()`` and ``cluster_role_bindings()`` expand it into API objects labelled
``kubernetes.io/bootstrapping=rbac-defaults``; ``CONTROLLER_USERS`` says which user each loop
acts as.

Flow of ``reconcile()`` (run by ``manage.py up`` on every start, idempotent)
---------------------------------------------------------------------------------
As the API server's bootstrap-roles hook and ``kubectl auth reconcile`` do:

* a missing object is created;
* an object annotated ``rbac.authorization.kubernetes.io/autoupdate: "false"`` is left alone;
* otherwise labels and annotations the default has are added (the stored values win), a role
  gets the permissions it lacks appended (as atomic rules; permissions a user added are
  kept), an aggregated role gets missing selectors, a binding gets missing subjects, and a
  binding whose roleRef changed is deleted and recreated (roleRef is immutable);

then aggregated roles are recomputed (``aggregation.reconcile_all``) so that ``admin``,
``edit`` and ``view`` have their rules as soon as the instance starts. All writes go through
the store; an object that did not drift is not written.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from clusterapi.rbac.rules import Rule, covers, rules_from_json

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
POLICY_FILE = Path(__file__).with_name("bootstrap-policy.yaml")
RBAC_GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{RBAC_GROUP}/v1"
BOOTSTRAP_LABEL = "kubernetes.io/bootstrapping"
BOOTSTRAP_LABEL_VALUE = "rbac-defaults"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
FIELD_MANAGER = "berth-rbac-bootstrap"


@functools.cache
def _policy_file() -> dict[str, Any]:
    data = yaml.safe_load(POLICY_FILE.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{POLICY_FILE} does not hold a mapping")
    return data


def _rule(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    rule = Rule.of(
        [str(v) for v in spec.get("verbs") or ()],
        groups=[str(v) for v in spec.get("groups") or ()],
        resources=[str(v) for v in spec.get("resources") or ()],
        names=[str(v) for v in spec.get("names") or ()],
        urls=[str(v) for v in spec.get("urls") or ()],
    )
    return rule.to_json()


def _metadata(name: str, labels: Mapping[str, Any] | None = None) -> Obj:
    all_labels = {str(k): str(v) for k, v in (labels or {}).items()}
    all_labels[BOOTSTRAP_LABEL] = BOOTSTRAP_LABEL_VALUE
    return {
        "name": name,
        "labels": dict(sorted(all_labels.items())),
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    }


def _cluster_role(name: str, spec: Mapping[str, Any]) -> Obj:
    obj: Obj = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRole",
        "metadata": _metadata(name, spec.get("labels")),
    }
    aggregate = spec.get("aggregate")
    if aggregate:
        obj["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {str(key): "true"}} for key in aggregate]
        }
    obj["rules"] = [_rule(rule) for rule in spec.get("rules") or ()]
    return obj


def _subject(text: str) -> Obj:
    kind, _, rest = text.partition(" ")
    if kind == "ServiceAccount":
        namespace, _, name = rest.partition("/")
        return {"kind": kind, "name": name, "namespace": namespace}
    if kind not in ("User", "Group"):
        raise ValueError(f"unknown subject {text!r} in {POLICY_FILE.name}")
    return {"apiGroup": RBAC_GROUP, "kind": kind, "name": rest}


def _binding(name: str, role: str, subjects: list[str]) -> Obj:
    obj: Obj = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": _metadata(name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
    }
    if subjects:
        obj["subjects"] = [_subject(s) for s in subjects]
    return obj


def cluster_roles() -> list[Obj]:
    """The default ClusterRoles as API objects (fresh copies)."""
    data = _policy_file()
    out = [_cluster_role(str(name), spec or {}) for name, spec in data["clusterRoles"].items()]
    for spec in data["controllers"].values():
        out.append(_cluster_role(str(spec["role"]), spec))
    return out


def cluster_role_bindings() -> list[Obj]:
    """The default ClusterRoleBindings as API objects (fresh copies)."""
    data = _policy_file()
    out = [
        _binding(
            str(name),
            str((spec or {}).get("role") or name),
            list((spec or {}).get("subjects") or ()),
        )
        for name, spec in data["clusterRoleBindings"].items()
    ]
    for spec in data["controllers"].values():
        role = str(spec["role"])
        out.append(_binding(role, role, [f"User {role}"]))
    return out


def _controller_users() -> dict[str, str]:
    data = _policy_file()
    users = {"scheduler": str(data["scheduler"])}
    users.update({str(loop): str(spec["role"]) for loop, spec in data["controllers"].items()})
    return users


# Berth control loop -> the user name it acts as (its role is bound to that user).
CONTROLLER_USERS: dict[str, str] = _controller_users()


# --- reconciliation -------------------------------------------------------------------------


def _protected(existing: Mapping[str, Any]) -> bool:
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    return annotations.get(AUTOUPDATE_ANNOTATION) == "false"


def _merge_metadata(result: Obj, expected: Mapping[str, Any]) -> None:
    # Upstream's merge(expected, existing): every expected key, the stored value winning.
    meta = result.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        wanted = (expected.get("metadata") or {}).get(key) or {}
        merged = {**wanted, **(meta.get(key) or {})}
        if merged:
            meta[key] = merged


def reconciled_cluster_role(existing: Mapping[str, Any], expected: Mapping[str, Any]) -> Obj | None:
    """The updated ClusterRole, or None when ``existing`` needs no change (or is protected)."""
    if _protected(existing):
        return None
    result = copy.deepcopy(dict(existing))
    _merge_metadata(result, expected)
    _, missing = covers(
        rules_from_json(existing.get("rules")), rules_from_json(expected.get("rules"))
    )
    if missing:
        result["rules"] = list(result.get("rules") or []) + [rule.to_json() for rule in missing]
    expected_selectors = (expected.get("aggregationRule") or {}).get("clusterRoleSelectors")
    existing_rule = existing.get("aggregationRule")
    if not expected_selectors:
        # Not an aggregated role by default: an aggregation added later is removed.
        result.pop("aggregationRule", None)
    else:
        selectors = list((existing_rule or {}).get("clusterRoleSelectors") or [])
        absent = [s for s in expected_selectors if s not in selectors]
        if absent:
            result["aggregationRule"] = {"clusterRoleSelectors": selectors + absent}
    return None if result == existing else result


def reconciled_binding(existing: Mapping[str, Any], expected: Mapping[str, Any]) -> Obj | None:
    """The updated binding, or None when ``existing`` needs no change (or is protected).

    The caller recreates the binding when the roleRef differs (see ``reconcile``).
    """
    if _protected(existing):
        return None
    result = copy.deepcopy(dict(existing))
    _merge_metadata(result, expected)
    subjects = list(existing.get("subjects") or [])
    absent = [s for s in expected.get("subjects") or [] if s not in subjects]
    if absent:
        result["subjects"] = subjects + absent
    return None if result == existing else result


def _kind(name: str) -> Any:
    from clusterapi.resources import by_kind

    kind = by_kind(API_VERSION, name)
    if kind is None:  # pragma: no cover - always registered
        raise LookupError(f"{name} is not a registered kind")
    return kind


def _ensure(kind: Any, expected: Obj, reconcile_one: Any) -> str:
    """Create, update or leave one object; returns what was done."""
    from clusterapi import store
    from clusterapi.core.errors import ApiError

    name = expected["metadata"]["name"]
    try:
        existing = store.get(kind, "", name)
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
        store.create(kind, copy.deepcopy(expected), field_manager=FIELD_MANAGER)
        return "created"
    if (
        kind.kind == "ClusterRoleBinding"
        and not _protected(existing)
        and (existing.get("roleRef") != expected.get("roleRef"))
    ):
        # roleRef is immutable: replace the binding, keeping nothing of the old one.
        store.delete(kind, "", name)
        store.create(kind, copy.deepcopy(expected), field_manager=FIELD_MANAGER)
        return "recreated"
    if reconcile_one(existing, expected) is None:
        return "protected" if _protected(existing) else "unchanged"

    def mutate(current: Obj) -> Obj:
        updated = reconcile_one(current, expected)
        return updated if updated is not None else current

    store.guaranteed_update(kind, "", name, mutate, field_manager=FIELD_MANAGER)
    return "updated"


def reconcile() -> None:
    """Create missing default roles and bindings and repair drifted ones (module docstring)."""
    from clusterapi.rbac import aggregation, authorizer

    actions: dict[str, list[str]] = {}
    role_kind = _kind("ClusterRole")
    for role in cluster_roles():
        action = _ensure(role_kind, role, reconciled_cluster_role)
        actions.setdefault(action, []).append(f"clusterrole/{role['metadata']['name']}")
    binding_kind = _kind("ClusterRoleBinding")
    for binding in cluster_role_bindings():
        action = _ensure(binding_kind, binding, reconciled_binding)
        actions.setdefault(action, []).append(f"clusterrolebinding/{binding['metadata']['name']}")
    aggregation.reconcile_all()
    authorizer.invalidate()
    for action, names in sorted(actions.items()):
        if action != "unchanged":
            logger.info("rbac bootstrap %s: %s", action, ", ".join(names))
