"""The audit log's batch mode (``BERTH_AUDIT_MODE=batch``, the default of a live server):
events handed to a writer thread, written many to a transaction, and readable after
``flush``. (The live server's audit tests read it through ``/audit/v1/events``, which flushes.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from clusterapi.audit import log
from clusterapi.audit.models import AuditEvent
from tests.live import ROOT


def _record(name: str) -> None:
    log.record(user="alice", groups=["dev"], verb="create", request_uri="/x", code=201, name=name)


@pytest.fixture
def batch_mode(settings: SettingsWrapper) -> None:
    settings.BERTH_AUDIT_MODE = "batch"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("batch_mode")
def test_events_handed_over_are_in_the_log_after_flush() -> None:
    for i in range(50):
        _record(f"pod-{i}")
    assert log.flush()
    names = set(AuditEvent.objects.values_list("name", flat=True))
    assert names == {f"pod-{i}" for i in range(50)}
    event = AuditEvent.objects.get(name="pod-7")
    assert (event.user, event.groups, event.verb, event.code) == ("alice", ["dev"], "create", 201)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("batch_mode")
def test_events_queued_while_a_write_runs_share_the_next_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert log.flush()  # nothing of an earlier test is still queued
    batches: list[int] = []
    writing = threading.Event()
    go_on = threading.Event()
    insert = log._insert

    def slow_first_insert(rows: list[list[Any]]) -> None:
        batches.append(len(rows))
        if len(batches) == 1:
            writing.set()
            assert go_on.wait(10)
        insert(rows)

    monkeypatch.setattr(log, "_insert", slow_first_insert)
    _record("first")
    assert writing.wait(10)
    for i in range(99):
        _record(f"later-{i}")
    go_on.set()
    assert log.flush()
    assert batches == [1, 99]
    assert AuditEvent.objects.count() == 100


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("batch_mode")
def test_a_failed_write_is_logged_and_the_writer_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert log.flush()
    insert = log._insert
    calls = 0

    def fail_once(rows: list[list[Any]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        insert(rows)

    monkeypatch.setattr(log, "_insert", fail_once)
    _record("lost")
    assert log.flush()
    _record("kept")
    assert log.flush()
    assert list(AuditEvent.objects.values_list("name", flat=True)) == ["kept"]
    assert "could not write 1 audit events" in caplog.text


@pytest.mark.django_db
def test_blocking_mode_writes_in_the_callers_transaction(settings: SettingsWrapper) -> None:
    settings.BERTH_AUDIT_MODE = "blocking"
    _record("now")
    assert AuditEvent.objects.filter(name="now").exists()


def test_an_unknown_mode_stops_the_start_with_a_clear_message() -> None:
    env = {**os.environ, "BERTH_AUDIT_MODE": "sometimes"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "BERTH_AUDIT_MODE='sometimes': must be 'batch' or 'blocking'" in done.stderr
