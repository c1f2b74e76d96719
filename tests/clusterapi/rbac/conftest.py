"""Fixtures shared by the RBAC tests: a fresh policy index for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusterapi.rbac import authorizer


@pytest.fixture(autouse=True)
def fresh_policy_index() -> Iterator[None]:
    # Each test's database rolls back at its end, and revision numbers with it: a snapshot
    # cached by one test must never be mistaken for the state of the next.
    authorizer.invalidate()
    yield
    authorizer.invalidate()
