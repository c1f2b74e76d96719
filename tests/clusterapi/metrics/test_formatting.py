"""Figures are written exactly as metrics-server writes them (Go's Quantity and Duration)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clusterapi.metrics import formatting


@pytest.mark.parametrize(
    ("nanocores", "text"),
    [
        (0, "0"),
        (1, "1n"),
        (12345, "12345n"),
        (123456789, "123456789n"),
        (12345000, "12345u"),
        (5000000, "5m"),
        (250000000, "250m"),
        (1500000000, "1500m"),
        (2000000000, "2"),
        (10000000000, "10"),
        (1000, "1u"),
    ],
)
def test_cpu_is_a_scaled_decimal_si_quantity(nanocores: int, text: str) -> None:
    assert formatting.cpu_quantity(nanocores) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0"),
        (512, "512"),
        (1000, "1k"),
        (1023, "1023"),
        (1024, "1Ki"),
        (1234 * 1024, "1234Ki"),
        (1234567, "1234567"),
        (64 * 1024 * 1024, "64Mi"),
        (3 * 1024**3, "3Gi"),
        (1589780 * 1024, "1589780Ki"),
    ],
)
def test_memory_is_a_binary_si_quantity(size: int, text: str) -> None:
    assert formatting.memory_quantity(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (15.012, "15.012s"),
        (15, "15s"),
        (1, "1s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (60.5, "1m0.5s"),
        (3725.25, "1h2m5.25s"),
        (0, "0s"),
    ],
)
def test_window_is_a_go_duration(seconds: float, text: str) -> None:
    assert formatting.window(seconds) == text


def test_timestamps_are_whole_seconds_in_utc() -> None:
    moment = datetime(2026, 11, 27, 10, 0, 5, 987654, tzinfo=UTC)
    assert formatting.timestamp(moment) == "2026-11-27T10:00:05Z"
