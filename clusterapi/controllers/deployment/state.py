"""The state of one Deployment reconcile, and the updates every step writes through.

``RolloutState`` is the bottom layer of the rollout: it holds the Deployment and its
ReplicaSets as read, and updates them through the store by compare-and-swap (the Deployment's
revision annotation through the main resource and its status through the status
subresource; a ReplicaSet's size, ``minReadySeconds`` and annotations through the ReplicaSet)
and records Events. The steps (``progress``, ``revisions``, ``rolling``, ``recreate``) are
layered on top of it; creating and deleting ReplicaSets belongs to ``revisions``.
"""

from __future__ import annotations

import copy
from datetime import datetime

from clusterapi import store
from clusterapi.controllers import events
from clusterapi.controllers.base import Obj
from clusterapi.controllers.deployment.util import (
    COMPONENT,
    REVISION,
    _annotations,
    _status,
    deployment_kind,
    replicaset_kind,
)
from clusterapi.store.errors import ApiError


class RolloutState:
    """The state of one reconcile of one Deployment, and its writes.

    ``d`` is the Deployment as read, updated in place as this reconcile writes it; ReplicaSet
    dicts are likewise replaced in place by what each write returns, so every later step sees
    the latest object.
    """

    def __init__(self, deployment: Obj, rs_list: list[Obj], now: datetime) -> None:
        self.d = deployment
        self.rs_list = rs_list
        self.now = now
        self.namespace = str(deployment["metadata"]["namespace"])
        self.name = str(deployment["metadata"]["name"])
        self.requeue: float | None = None

    # --- writes ---------------------------------------------------------------------------

    def _write_deployment(self, *, annotations: bool = False, status: bool = False) -> None:
        """Persist this reconcile's changes to the revision annotation and/or the status."""
        kind = deployment_kind()
        uid = self.d["metadata"]["uid"]
        if annotations:
            value = _annotations(self.d).get(REVISION)

            def set_revision(current: Obj) -> Obj:
                if current["metadata"]["uid"] != uid:
                    raise ApiError(404, "NotFound", "the deployment was replaced")
                if value is not None:
                    _annotations(current)[REVISION] = value
                return current

            result = store.guaranteed_update(
                kind, self.namespace, self.name, set_revision, field_manager=COMPONENT
            )
            self.d["metadata"]["resourceVersion"] = result.obj["metadata"]["resourceVersion"]
        if status:
            new_status = copy.deepcopy(_status(self.d))

            def set_status(current: Obj) -> Obj:
                if current["metadata"]["uid"] != uid:
                    raise ApiError(404, "NotFound", "the deployment was replaced")
                current["status"] = new_status
                return current

            store.guaranteed_update(
                kind,
                self.namespace,
                self.name,
                set_status,
                subresource="status",
                field_manager=COMPONENT,
            )

    def _write_rs(self, rs: Obj, change: Obj) -> None:
        """Apply ``change`` to ``rs`` and refresh the dict in place with what was stored.

        ``change`` may set ``replicas`` and ``minReadySeconds`` and merge ``annotations``
        (annotations others put on the ReplicaSet meanwhile are kept).
        """
        uid = rs["metadata"]["uid"]

        def mutate(current: Obj) -> Obj:
            if current["metadata"]["uid"] != uid:
                raise ApiError(404, "NotFound", "the replica set was replaced")
            spec = current.setdefault("spec", {})
            for key in ("replicas", "minReadySeconds"):
                if key in change:
                    spec[key] = change[key]
            if "annotations" in change:
                _annotations(current).update(change["annotations"])
            return current

        result = store.guaranteed_update(
            replicaset_kind(),
            self.namespace,
            rs["metadata"]["name"],
            mutate,
            field_manager=COMPONENT,
        )
        rs.clear()
        rs.update(result.obj)

    def _event(self, type_: str, reason: str, message: str) -> None:
        events.record(self.d, type_, reason, message, component=COMPONENT)
