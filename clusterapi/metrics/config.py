"""The metrics settings, from Django settings or the environment, with safe defaults."""

from __future__ import annotations

import os

from django.conf import settings


def _seconds(name: str, default: float) -> float:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name) or default
    return float(value)


def retention_seconds() -> float:
    """How long samples are kept (``BERTH_METRICS_RETENTION_SECONDS``, default one hour)."""
    return _seconds("BERTH_METRICS_RETENTION_SECONDS", 3600.0)


def staleness_seconds() -> float:
    """How old the newest sample of an object may be for ``kubectl top`` to show it
    (``BERTH_METRICS_STALENESS_SECONDS``, default 90 s: six missed 15 s samples)."""
    return _seconds("BERTH_METRICS_STALENESS_SECONDS", 90.0)


def max_skew_seconds() -> float:
    """How far a sample's time may be from the API server's clock
    (``BERTH_METRICS_MAX_SKEW_SECONDS``, default five minutes)."""
    return _seconds("BERTH_METRICS_MAX_SKEW_SECONDS", 300.0)
