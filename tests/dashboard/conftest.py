"""Browser fixtures for the dashboard's end-to-end tests: Debian's Chromium through Playwright.

Playwright's own browser download is not used (machines here cannot fetch it);
``tests/run`` installs Debian's ``chromium``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing (tests/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser profile per test; live servers' self-signed CAs are not trusted."""
    context = chromium.new_context(ignore_https_errors=True)
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()
