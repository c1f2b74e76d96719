"""The Recreate strategy: every old pod gone before the new ReplicaSet grows.

``rollout_recreate`` (upstream ``recreate.go``) scales every old ReplicaSet to zero, then
waits until none of their pods runs: their ``status.replicas`` must read zero and no pod
they controlled may be outside a terminal phase (an Unknown pod might still run, so it
counts). Only then does it create the new ReplicaSet, if missing, and scale it to
``spec.replicas`` in one step. Pods are not watched; the old ReplicaSets' status changes are
what wake the Deployment while it waits.
"""

from __future__ import annotations

from clusterapi.controllers import pods
from clusterapi.controllers.base import Obj
from clusterapi.controllers.deployment.progress import deployment_complete
from clusterapi.controllers.deployment.rolling import RollingSteps
from clusterapi.controllers.deployment.util import _active, _count, _status, replicas


class RecreateSteps(RollingSteps):
    """The Recreate strategy (it reuses the scaling steps of ``RollingSteps``)."""

    def rollout_recreate(self, pod_map: dict[str, list[Obj]]) -> None:
        """``rolloutRecreate``: all old pods gone before the new ReplicaSet grows."""
        new_rs, old = self.all_rss(create=False)
        all_rss = [*old, new_rs] if new_rs is not None else list(old)
        scaled_down = False
        for rs in _active(old):
            scaled_down = self._scale_and_record(rs, 0) or scaled_down
        if scaled_down or self._old_pods_running(new_rs, old, pod_map):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old = self.all_rss(create=True)
            all_rss = [*old, new_rs] if new_rs is not None else list(old)
        if new_rs is not None:
            self._scale_and_record(new_rs, replicas(self.d))
        if deployment_complete(self.d, _status(self.d)):
            self.cleanup(old)
        self.sync_rollout_status(all_rss, new_rs)

    @staticmethod
    def _old_pods_running(
        new_rs: Obj | None, old: list[Obj], pod_map: dict[str, list[Obj]]
    ) -> bool:
        if sum(_count(rs, "replicas") for rs in old) > 0:
            return True
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        for rs_uid, owned in pod_map.items():
            if rs_uid == new_uid:
                continue
            # Finished pods do not count; Unknown ones might still run, so they do.
            if any(pods.phase(p) not in pods.TERMINAL_PHASES for p in owned):
                return True
        return False
