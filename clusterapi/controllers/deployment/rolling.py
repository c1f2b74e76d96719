"""Scaling ReplicaSets: the RollingUpdate strategy and proportional resizes.

``rollout_rolling`` (upstream ``rolling.go``) first surges the new ReplicaSet as far as
``replicas + maxSurge`` allows, then drains old ones as far as ``replicas - maxUnavailable``
available pods allow: old replicas that are not available anyway go first (they cost no
availability), and the new ReplicaSet's unavailable pods count against the budget so a
crash-looping template never drains the old, working pods.

``sync`` handles a paused Deployment or a **scaling event** (``spec.replicas`` changed under
an active ReplicaSet): ``scale`` spreads the new size over the active ReplicaSets in
proportion to their size, so a resize mid-rollout keeps the rollout's ratio. Every size
change of an existing ReplicaSet goes through ``scale_rs``, which also refreshes the
``desired-replicas`` and ``max-replicas`` annotations that later resizes read.
"""

from __future__ import annotations

import copy

from clusterapi.controllers import events
from clusterapi.controllers.base import Obj
from clusterapi.controllers.deployment.progress import deployment_complete
from clusterapi.controllers.deployment.revisions import RevisionSteps
from clusterapi.controllers.deployment.util import (
    DESIRED_REPLICAS,
    _active,
    _annotations,
    _count,
    _created,
    _int_annotation,
    _rolling,
    _spec,
    _status,
    get_proportion,
    is_saturated,
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    replicas,
)


class RollingSteps(RevisionSteps):
    """Scaling steps, the RollingUpdate strategy, and ``sync`` for resizes and pauses."""

    def scale_rs(self, rs: Obj, new_scale: int, operation: str = "") -> bool:
        """Set a ReplicaSet's size and replica annotations; True when the size changed."""
        size_changed = replicas(rs) != new_scale
        annotations = dict(_annotations(copy.deepcopy(rs)))
        annotations_changed = self._set_replicas_annotations(annotations)
        if not size_changed and not annotations_changed:
            return False
        old_scale = replicas(rs)
        self._write_rs(rs, {"replicas": new_scale, "annotations": annotations})
        if size_changed:
            direction = operation or ("up" if old_scale < new_scale else "down")
            self._event(
                events.NORMAL,
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} "
                f"from {old_scale} to {new_scale}",
            )
        return size_changed

    def _scale_and_record(self, rs: Obj, new_scale: int) -> bool:
        # ``scaleReplicaSetAndRecordEvent``: nothing at all when the size is right already.
        if replicas(rs) == new_scale:
            return False
        return self.scale_rs(rs, new_scale)

    def scale(self, new_rs: Obj | None, old: list[Obj]) -> None:
        """Resize for a scaling event or a paused Deployment (``scale``)."""
        want = replicas(self.d)
        only = self._active_or_latest(new_rs, old)
        if only is not None:
            if replicas(only) != want:
                self._scale_and_record(only, want)
            return
        if is_saturated(self.d, new_rs):
            for rs in _active(old):
                self._scale_and_record(rs, 0)
            return
        if _rolling(self.d) is None:
            return
        # Several ReplicaSets hold pods mid-rollout: spread the change in proportion to
        # their sizes, larger first, newer first when growing and older first when shrinking.
        active = _active([*old, new_rs])
        allowed = want + max_surge(self.d) if want > 0 else 0
        to_add = allowed - sum(replicas(rs) for rs in active)
        operation = ""
        if to_add > 0:
            newest_first = sorted(active, key=_created, reverse=True)
            active = sorted(newest_first, key=replicas, reverse=True)
            operation = "up"
        elif to_add < 0:
            oldest_first = sorted(active, key=_created)
            active = sorted(oldest_first, key=replicas, reverse=True)
            operation = "down"
        added = 0
        sizes: list[int] = []
        for rs in active:
            if to_add != 0:
                proportion = get_proportion(rs, self.d, to_add, added)
                sizes.append(replicas(rs) + proportion)
                added += proportion
            else:
                sizes.append(replicas(rs))
        for index, rs in enumerate(active):
            size = sizes[index]
            if index == 0 and to_add != 0:
                # Leftovers of the rounding go to (or come from) the largest ReplicaSet.
                size = max(size + to_add - added, 0)
            self.scale_rs(rs, size, operation)

    def _active_or_latest(self, new_rs: Obj | None, old: list[Obj]) -> Obj | None:
        """The only active ReplicaSet, or the newest when none is (``FindActiveOrLatest``)."""
        if new_rs is None and not old:
            return None
        newest_first = sorted(old, key=_created, reverse=True)
        active = _active([*newest_first, new_rs])
        if not active:
            return new_rs if new_rs is not None else newest_first[0]
        if len(active) == 1:
            return active[0]
        return None

    def is_scaling_event(self) -> bool:
        """An active ReplicaSet was sized for a different ``spec.replicas``."""
        new_rs, old = self.all_rss(create=False)
        for rs in _active([*old, new_rs]):
            desired = _int_annotation(rs, DESIRED_REPLICAS)
            if desired is not None and desired != replicas(self.d):
                return True
        return False

    # --- strategies -----------------------------------------------------------------------

    def rollout_rolling(self) -> None:
        """``rolloutRolling``: surge the new ReplicaSet, then drain old ones."""
        new_rs, old = self.all_rss(create=True)
        if new_rs is None:
            return
        all_rss = [*old, new_rs]
        if self._reconcile_new_rs(all_rss, new_rs):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if self._reconcile_old_rss(all_rss, _active(old), new_rs):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if deployment_complete(self.d, _status(self.d)):
            self.cleanup(old)
        self.sync_rollout_status(all_rss, new_rs)

    def _reconcile_new_rs(self, all_rss: list[Obj], new_rs: Obj) -> bool:
        want = replicas(self.d)
        if replicas(new_rs) == want:
            return False
        if replicas(new_rs) > want:
            return self._scale_and_record(new_rs, want)
        return self._scale_and_record(new_rs, new_rs_new_replicas(self.d, all_rss, new_rs))

    def _reconcile_old_rss(self, all_rss: list[Obj], old: list[Obj], new_rs: Obj) -> bool:
        """Scale old ReplicaSets down as far as availability allows (``reconcileOldReplicaSets``).

        At most ``all - minAvailable - newUnavailable`` pods may go: counting the new
        ReplicaSet's unavailable pods keeps a crash-looping new template from draining the
        old, working pods.
        """
        if sum(replicas(rs) for rs in old) == 0:
            return False
        all_count = sum(replicas(rs) for rs in all_rss)
        min_available = replicas(self.d) - max_unavailable(self.d)
        new_unavailable = replicas(new_rs) - _count(new_rs, "availableReplicas")
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = self._cleanup_unhealthy(old, max_scaled_down)
        scaled = self._scale_down_old_for_rolling([*old, new_rs], old)
        return cleaned + scaled > 0

    def _cleanup_unhealthy(self, old: list[Obj], max_cleanup: int) -> int:
        """Drop old replicas that are not available anyway: it costs no availability."""
        total = 0
        for rs in sorted(old, key=_created):
            if total >= max_cleanup:
                break
            size, available = replicas(rs), _count(rs, "availableReplicas")
            if size == 0 or size == available:
                continue
            down = min(max_cleanup - total, size - available)
            self._scale_and_record(rs, size - down)
            total += down
        return total

    def _scale_down_old_for_rolling(self, all_rss: list[Obj], old: list[Obj]) -> int:
        """Remove old replicas while more than ``replicas - maxUnavailable`` are available."""
        min_available = replicas(self.d) - max_unavailable(self.d)
        available = sum(_count(rs, "availableReplicas") for rs in all_rss)
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in sorted(old, key=_created):
            if total >= budget:
                break
            if replicas(rs) == 0:
                continue
            down = min(replicas(rs), budget - total)
            self._scale_and_record(rs, replicas(rs) - down)
            total += down
        return total

    def sync(self) -> None:
        """``sync``: scaling events and paused Deployments (no new ReplicaSet is made)."""
        new_rs, old = self.all_rss(create=False)
        self.scale(new_rs, old)
        if _spec(self.d).get("paused"):
            self.cleanup(old)
        self.sync_status([*old, new_rs] if new_rs is not None else list(old), new_rs)
