"""The ReplicationController controller: the original replicated-pod loop.

Upstream runs the ReplicaSet controller for ReplicationControllers through a conversion
layer; Berth does the same with one ``ReplicaManager`` (``replicaset``) parametrised by the
kind. What differs is only the shape: the selector is a plain label map (``spec.selector``,
defaulted from the template's labels), pods point at ``v1``/``ReplicationController`` owners,
and the status has no ``terminatingReplicas`` field.
"""

from __future__ import annotations

from clusterapi.controllers.base import Controller, Obj
from clusterapi.controllers.replicaset import ReplicaManager
from clusterapi.core.selectors import LabelSelector, from_label_selector


def _selector(obj: Obj) -> LabelSelector:
    selector = (obj.get("spec") or {}).get("selector")
    # A map selects by equality on each key, like a LabelSelector of matchLabels; a missing
    # selector selects nothing (defaulting fills it from the template).
    return from_label_selector(None if selector is None else {"matchLabels": selector})


MANAGER = ReplicaManager(
    controller_name="replicationcontroller",
    api_version="v1",
    kind_name="ReplicationController",
    component="replication-controller",
    selector_of=_selector,
    report_terminating=False,
)


def reconcile(namespace: str, name: str) -> float | None:
    """Converge one ReplicationController (see ``replicaset`` for the flow)."""
    return MANAGER.reconcile(namespace, name)


CONTROLLER = Controller(
    name="replicationcontroller",
    kind="ReplicationController",
    reconcile=reconcile,
    watches={"Pod": MANAGER.pod_owners},
)
