"""The clusterrole-aggregation controller: aggregated ClusterRoles gather their rules.

Role
----
A ClusterRole with an ``aggregationRule`` (``admin``, ``edit``, ``view`` and any a user makes)
does not list its own rules: they are the union of the rules of every other ClusterRole whose
labels match one of its ``clusterRoleSelectors``. Adding
``rbac.authorization.k8s.io/aggregate-to-view: "true"`` to a ClusterRole thus extends ``view``
(and, through ``edit`` and ``admin``, which aggregate ``view`` and ``edit``, those too).

Flow
----
``reconcile_cluster_role(name)`` recomputes one aggregated role as upstream's controller does:
for each selector in order, the matching ClusterRoles in name order (never the role itself),
each of their rules once; then writes the result through the store, only when it differs.
Level-triggered and idempotent, so it is safe to run twice or concurrently (a lost
compare-and-swap is retried by ``guaranteed_update`` with the fresh object).

A change to any ClusterRole can change any aggregated role, so the lead wires ClusterRole
writes to ``reconcile_all()``, which repeats until nothing changes: aggregated roles may
aggregate one another (``admin`` ← ``edit`` ← ``view``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from clusterapi.core.selectors import SelectorError, from_label_selector
from clusterapi.rbac.rules import Rule, rules_from_json

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
FIELD_MANAGER = "clusterrole-aggregation-controller"
# admin <- edit <- view is three deep; a generous bound still stops a selector cycle.
_MAX_PASSES = 10


def _kind() -> Any:
    from clusterapi.resources import by_kind

    kind = by_kind("rbac.authorization.k8s.io/v1", "ClusterRole")
    if kind is None:  # pragma: no cover - always registered
        raise LookupError("ClusterRole is not a registered kind")
    return kind


def _selectors(obj: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    rule = obj.get("aggregationRule")
    if not isinstance(rule, Mapping):
        return None
    selectors = rule.get("clusterRoleSelectors")
    if not isinstance(selectors, list):
        return []
    return [s for s in selectors if isinstance(s, Mapping)]


def aggregate_rules(
    target: Mapping[str, Any], cluster_roles: Sequence[Mapping[str, Any]]
) -> list[Rule] | None:
    """The rules ``target`` aggregates from ``cluster_roles``; None if it is not aggregated.

    Raises ``SelectorError`` for an invalid selector (the role is then left as it is).
    """
    selectors = _selectors(target)
    if selectors is None:
        return None
    own_name = (target.get("metadata") or {}).get("name")
    ordered = sorted(cluster_roles, key=lambda obj: str((obj.get("metadata") or {}).get("name")))
    collected: list[Rule] = []
    for selector in selectors:
        match = from_label_selector(selector)
        for candidate in ordered:
            meta = candidate.get("metadata") or {}
            if meta.get("name") == own_name or not match.matches(meta.get("labels") or {}):
                continue
            for rule in rules_from_json(candidate.get("rules")):
                if rule not in collected:
                    collected.append(rule)
    return collected


def _all_cluster_roles() -> list[Obj]:
    from clusterapi import store

    return store.list_objects(_kind()).objects()


def reconcile_cluster_role(
    name: str, cluster_roles: Sequence[Mapping[str, Any]] | None = None
) -> bool:
    """Recompute one aggregated ClusterRole's rules; returns whether it was rewritten.

    ``cluster_roles`` is the current list, when the caller already read it.
    """
    from clusterapi import store
    from clusterapi.core.errors import ApiError

    roles = list(cluster_roles) if cluster_roles is not None else _all_cluster_roles()
    target = next((r for r in roles if (r.get("metadata") or {}).get("name") == name), None)
    if target is None:
        return False
    try:
        wanted = aggregate_rules(target, roles)
    except SelectorError as exc:
        logger.warning("clusterrole %s has an invalid aggregationRule: %s", name, exc)
        return False
    if wanted is None or wanted == list(rules_from_json(target.get("rules"))):
        return False
    wanted_json = [rule.to_json() for rule in wanted]

    def mutate(obj: Obj) -> Obj:
        obj["rules"] = wanted_json
        return obj

    try:
        result = store.guaranteed_update(_kind(), "", name, mutate, field_manager=FIELD_MANAGER)
    except ApiError as exc:
        if exc.reason == "NotFound":
            return False
        raise
    return result.changed


def reconcile_all() -> int:
    """Recompute every aggregated ClusterRole until stable; returns how many writes it made."""
    writes = 0
    for _ in range(_MAX_PASSES):
        roles = _all_cluster_roles()
        changed = 0
        for role in roles:
            if _selectors(role) is None:
                continue
            name = str((role.get("metadata") or {}).get("name") or "")
            if reconcile_cluster_role(name, roles):
                changed += 1
        writes += changed
        if not changed:
            break
    return writes


def reconcile(namespace: str, name: str) -> float | None:
    """Controller entry point (``clusterapi.controllers`` signature): converge all aggregates."""
    reconcile_all()
    return None
