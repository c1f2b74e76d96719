"""Steps the dashboard's browser tests share (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

from typing import Any


def submit_password(page: Any, username: str, password: str) -> None:
    """Fill in and submit the issuer's password form (``/dex/auth/<connector>``)."""
    page.fill("#login", username)
    page.fill("#password", password)
    page.click("#submit-login")
