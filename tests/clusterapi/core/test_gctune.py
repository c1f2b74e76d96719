"""The collector settings of long-running processes (``clusterapi.core.gctune``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from clusterapi.core import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_freezes_what_exists_and_raises_the_thresholds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BERTH_GC_THRESHOLD", raising=False)
    assert gctune.tune() == (gctune.DEFAULT_THRESHOLD, 20, 20)
    assert gc.get_freeze_count() > 0
    monkeypatch.setenv("BERTH_GC_THRESHOLD", "1234")
    assert gctune.tune()[0] == 1234


@pytest.mark.usefixtures("restore_gc")
def test_a_threshold_of_zero_keeps_the_interpreters_own(monkeypatch: pytest.MonkeyPatch) -> None:
    before = gc.get_threshold()
    monkeypatch.setenv("BERTH_GC_THRESHOLD", "0")
    assert gctune.tune() == before
    monkeypatch.delenv("BERTH_GC_THRESHOLD")
    assert gctune.tune(young=0) == before
