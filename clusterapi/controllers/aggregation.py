"""The clusterrole-aggregation controller: keeps aggregated ClusterRoles' rules current.

The rule computation lives with RBAC (``clusterapi.rbac.aggregation``); this module only
declares when it runs: on every ClusterRole change, for every aggregated ClusterRole.
"""

from __future__ import annotations

from collections.abc import Iterable

from clusterapi.controllers.base import Controller, Key, Obj


def _reconcile(namespace: str, name: str) -> float | None:
    from clusterapi.rbac import aggregation

    return aggregation.reconcile(namespace, name)


def _aggregated_roles(obj: Obj) -> Iterable[Key]:
    # Any ClusterRole may match some aggregation selector: recheck the aggregated ones.
    from clusterapi import store
    from clusterapi.resources import by_kind

    kind = by_kind("rbac.authorization.k8s.io/v1", "ClusterRole")
    assert kind is not None
    for role in store.list_objects(kind).objects():
        if role.get("aggregationRule"):
            yield ("", role["metadata"]["name"])


CONTROLLER = Controller(
    name="clusterrole-aggregation",
    kind="ClusterRole",
    reconcile=_reconcile,
    # A ClusterRole's change also wakes every aggregated role it may feed.
    watches={"ClusterRole": _aggregated_roles},
    singleton=False,
)
