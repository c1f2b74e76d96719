"""Leader election through Lease objects, for loops that must run once in the cluster.

The holder of Lease ``berth-<loop>`` in ``kube-system`` leads while it renews the lease
(every ``RENEW_SECONDS``); another worker takes over once ``leaseDurationSeconds`` pass without
a renewal. Acquiring and renewing are compare-and-swap writes through the store, so two
candidates can never both win the same term.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from clusterapi import store
from clusterapi.core.errors import ApiError
from clusterapi.resources import by_kind

NAMESPACE = "kube-system"
LEASE_SECONDS = 15
RENEW_SECONDS = 5.0

_identity = f"{socket.gethostname()}_{os.getpid()}"
_renewed: dict[str, float] = {}
_lock = threading.Lock()


def identity() -> str:
    return _identity


def _micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def is_leader(loop: str) -> bool:
    """Whether this process leads ``loop`` (acquiring or renewing the Lease as needed)."""
    with _lock:
        if time.monotonic() - _renewed.get(loop, -1e9) < RENEW_SECONDS:
            return True
    kind = by_kind("coordination.k8s.io/v1", "Lease")
    assert kind is not None
    name = f"berth-{loop}"
    now = datetime.now(UTC)
    try:
        lease = store.get(kind, NAMESPACE, name)
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
        lease = None
    spec = {
        "holderIdentity": _identity,
        "leaseDurationSeconds": LEASE_SECONDS,
        "renewTime": _micro(now),
    }
    try:
        if lease is None:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = 0
            store.create(
                kind,
                {"metadata": {"name": name}, "spec": spec},
                namespace=NAMESPACE,
                field_manager="berth-leader-election",
            )
        else:
            current = lease.get("spec") or {}
            renewed = _parse(current.get("renewTime")) or datetime.fromtimestamp(0, UTC)
            duration = int(current.get("leaseDurationSeconds") or LEASE_SECONDS)
            holder = current.get("holderIdentity")
            if holder != _identity and renewed + timedelta(seconds=duration) > now:
                return False
            if holder != _identity:
                spec["acquireTime"] = _micro(now)
                spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
            lease["spec"] = {**current, **spec}
            store.update(kind, NAMESPACE, name, lease, field_manager="berth-leader-election")
    except ApiError as exc:
        if exc.reason in ("Conflict", "AlreadyExists"):
            return False
        raise
    with _lock:
        _renewed[loop] = time.monotonic()
    return True
