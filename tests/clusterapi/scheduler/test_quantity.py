"""Quantities are parsed exactly and rounded up to the scheduler's units, as upstream."""

from __future__ import annotations

import pytest

from clusterapi.scheduler import quantity


@pytest.mark.parametrize(
    ("resource", "text", "expected"),
    [
        ("cpu", "1", 1000),
        ("cpu", "250m", 250),
        ("cpu", "0.5", 500),
        ("cpu", "1.5", 1500),
        ("cpu", "0.1m", 1),  # rounds up: a request is never lost
        ("cpu", "2e3", 2_000_000),
        ("memory", "128Mi", 128 * 2**20),
        ("memory", "1.5Gi", 3 * 2**29),
        ("memory", "1G", 10**9),
        ("memory", "1k", 1000),
        ("memory", "1Ki", 1024),
        ("memory", "100m", 1),  # 0.1 byte rounds up to 1
        ("pods", "110", 110),
        ("nvidia.com/gpu", "2", 2),
    ],
)
def test_amounts_are_exact_and_round_up(resource: str, text: str, expected: int) -> None:
    assert quantity.amount(resource, text) == expected


def test_numbers_are_quantities_too() -> None:
    assert quantity.milli_value(2) == 2000
    assert quantity.whole_value(0.5) == 1


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5Zi", "--1", "1 Gi"])
def test_malformed_quantities_are_rejected(text: str) -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse(text)
