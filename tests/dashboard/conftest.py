"""The dashboard's browser tests: a fresh page per test (Chromium: tests/conftest.py).

Playwright's own browser download is not used (machines here cannot fetch it);
``tests/run`` installs Debian's ``chromium``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser profile per test; live servers' self-signed CAs are not trusted."""
    context = chromium.new_context(ignore_https_errors=True)
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()
