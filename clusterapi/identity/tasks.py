"""Celery beat task: rotate the signing key when due and drop keys whose tokens expired.

Idempotent and safe to run in several workers at once (see ``keys.rotate``).
"""

from __future__ import annotations

from celery import shared_task

from clusterapi.identity import keys


@shared_task(name="berth.identity.rotate_keys", ignore_result=True)
def rotate_keys_task() -> str:
    """Rotate if due, prune expired keys; the kid of the signing key."""
    current = keys.rotate()
    keys.prune()
    return current.kid
