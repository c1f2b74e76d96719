"""Shared fixtures: a live server per test module (e2e), kubectl and the Python client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.live import Kubectl, LiveServer, SimulatedAgent

CHROMIUM = Path("/usr/bin/chromium")

# Unit tests call reconcile functions directly; committed writes enqueue nothing.
os.environ.setdefault("BERTH_CONTROLLERS", "0")
# Unit tests' transactions never commit and their database is in memory: the writer threads
# of the audit log and of Events, with connections of their own, would see neither. They write
# both in blocking mode; live servers use the default (batch), which
# audit/test_batch_writer.py and controllers/test_events.py cover.
settings.BERTH_AUDIT_MODE = "blocking"
settings.BERTH_EVENTS_MODE = "blocking"


LOG_TAIL_LINES = 150


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing end-to-end test's report carries the tail of its live processes' logs.

    CI keeps only pytest's output; without the server's and agents' own words a failure that
    happens once in many runs cannot be explained afterwards.
    """
    report = yield
    if report.failed and call.when == "call":
        for value in getattr(item, "funcargs", {}).values():
            agents = value.values() if isinstance(value, dict) else (value,)
            for live in agents:
                if isinstance(live, LiveServer | SimulatedAgent):
                    tail = "\n".join(live.log().splitlines()[-LOG_TAIL_LINES:])
                    label = getattr(live, "name", "server")
                    report.sections.append((f"log of {label} (last lines)", tail))
    return report


@pytest.fixture(autouse=True)
def store_singletons(request: pytest.FixtureRequest) -> None:
    """The store's revision counter and compaction mark exist in every test with a database.

    The migrations seed both rows, but a transactional test (``transaction=True``) flushes
    every table when it ends, and the tests after it would find no counter to take a
    revision from.
    """
    if request.node.get_closest_marker("django_db") is None:
        return
    from clusterapi.core.models import Compaction, Revision

    Revision.objects.get_or_create(pk=1, defaults={"value": 0})
    Compaction.objects.get_or_create(pk=1, defaults={"revision": 0})


@pytest.fixture(autouse=True)
def fresh_snapshots() -> Iterator[None]:
    """In-memory snapshots of small kinds (``clusterapi.store.snapshots``) and shared lists
    (``clusterapi.store.shared``) start empty in every test: a test's rolled-back writes must
    not be served to the next one."""
    from clusterapi.store import shared, snapshots

    snapshots.forget_all()
    shared.clear()
    yield
    snapshots.forget_all()
    shared.clear()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright (its own browser download is never used)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing (tests/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def live_server_berth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A running Berth (``manage.py up``) with its own data directory and port."""
    server = LiveServer(tmp_path_factory.mktemp("berth")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def kubectl(live_server_berth: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl as the bootstrap admin of the module's live server."""
    return Kubectl(live_server_berth.admin_kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def k8s_client(live_server_berth: LiveServer) -> Iterator[object]:
    """An ApiClient of the official ``kubernetes`` package, as the bootstrap admin."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(live_server_berth.admin_kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    return tmp_path
