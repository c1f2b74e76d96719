"""The broker-less instance's file cache (``clusterapi.filecache``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterapi import filecache


def cache(tmp_path: Path, max_entries: int = 1000) -> filecache.FileCache:
    return filecache.FileCache(str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": max_entries}})


def entries(tmp_path: Path) -> int:
    return len(list(tmp_path.glob("*.djcache")))


def test_writes_do_not_list_the_directory_between_culls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = cache(tmp_path)
    listings: list[int] = []
    # django-stubs omits FileBasedCache's private _list_cache_files (as in clusterapi.filecache).
    original: Callable[[], list[str]] = c._list_cache_files  # type: ignore[attr-defined]

    def counted() -> list[str]:
        listings.append(1)
        return original()

    monkeypatch.setattr(c, "_list_cache_files", counted)
    c.set("first", 0, 60)  # culls
    assert listings
    listings.clear()
    for n in range(50):
        c.set(f"k{n}", n, 60)
        assert c.add(f"a{n}", n, 60)
    assert listings == []  # no more for a minute
    assert c.get("k7") == 7


def test_a_cull_deletes_expired_entries_and_keeps_live_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = cache(tmp_path)
    c.set("short", 1, 1)
    c.set("long", 2, 600)
    assert entries(tmp_path) == 2
    time.sleep(1.1)
    monkeypatch.setattr(filecache, "CULL_INTERVAL_SECONDS", 0.0)
    c._next_cull = 0.0
    c.set("new", 3, 600)
    assert entries(tmp_path) == 2
    assert c.get("long") == 2 and c.get("short") is None


def test_past_max_entries_a_cull_still_trims(tmp_path: Path) -> None:
    c = cache(tmp_path, max_entries=10)
    for n in range(10):
        c.set(f"k{n}", n, 600)
    c._next_cull = 0.0
    c.set("one-more", 1, 600)
    assert entries(tmp_path) < 11
