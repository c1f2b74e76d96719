"""The on-disk cache of compiled validator code (``clusterapi.admission.codecache``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import override_settings

from clusterapi.admission import codecache


def run(code: object) -> object:
    namespace: dict[str, object] = {}
    exec(code, namespace)  # type: ignore[arg-type]  # noqa: S102 - the test's own source
    return namespace["answer"]


def test_code_is_built_once_then_loaded(tmp_path: Path) -> None:
    built: list[str] = []

    def source() -> str:
        built.append("x")
        return "answer = 42\n"

    with override_settings(CACHE_DIR=str(tmp_path)):
        name = codecache.entry_name("io.example.Thing", "digest")
        assert run(codecache.code(name, source)) == 42
        assert run(codecache.code(name, source)) == 42
    assert built == ["x"]
    entry = tmp_path / "validators" / name
    assert entry.is_file() and oct(entry.parent.stat().st_mode & 0o777) == "0o700"


def test_entries_differ_by_definition_and_schemas() -> None:
    names = {
        codecache.entry_name("io.example.A", "d1"),
        codecache.entry_name("io.example.B", "d1"),
        codecache.entry_name("io.example.A", "d2"),
    }
    assert len(names) == 3


def test_an_unreadable_entry_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with override_settings(CACHE_DIR=str(tmp_path)):
        name = codecache.entry_name("io.example.Thing", "digest")
        (tmp_path / "validators").mkdir()
        (tmp_path / "validators" / name).write_bytes(b"\x00not marshal")
        assert run(codecache.code(name, lambda: "answer = 7\n")) == 7
        assert run(codecache.code(name, lambda: "answer = 8\n")) == 7  # the rebuilt entry
    assert "rebuilding" in caplog.text


def test_an_empty_cache_dir_turns_the_cache_off(tmp_path: Path) -> None:
    with override_settings(CACHE_DIR=""):
        name = codecache.entry_name("io.example.Thing", "digest")
        assert run(codecache.code(name, lambda: "answer = 1\n")) == 1
        assert run(codecache.code(name, lambda: "answer = 2\n")) == 2
