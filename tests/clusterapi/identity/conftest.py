"""Fixtures of the issuer tests: a configuration file, a browser, users.

The issuer runs in-process behind Django's test client, over "https" (``secure=True``), at
``https://testserver/dex``. Each test gets its own ``BERTH_CONFIG`` and client IP, so the
lockout counters of one test never meet another's.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.test import Client

from clusterapi.authn import oidc
from clusterapi.identity import config as identity_config
from clusterapi.rbac import authorizer
from tests.clusterapi.identity.helpers import (
    CLI_REDIRECT,
    DASHBOARD_LOGOUT,
    DASHBOARD_REDIRECT,
    DASHBOARD_SECRET,
    ISSUER,
)
from tests.clusterapi.identity.slapd import slapd  # noqa: F401 - a private slapd per module

STATIC_PASSWORD = "static-pass-9"


def write_config(path: Path, identity: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"identity": identity}))
    return path


def base_identity_config() -> dict[str, Any]:
    hashed = bcrypt.hashpw(STATIC_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    return {
        "issuer": ISSUER,
        "expiry": {"refreshTokens": {"reuseInterval": "0s"}},
        "lockout": {"maxFailures": 3, "duration": "10m"},
        "staticClients": [
            {
                "id": "dashboard",
                "name": "Berth dashboard",
                "secret": DASHBOARD_SECRET,
                "redirectURIs": [DASHBOARD_REDIRECT],
                "postLogoutRedirectURIs": [DASHBOARD_LOGOUT],
            },
            {"id": "cli", "name": "CLI", "public": True, "redirectURIs": [CLI_REDIRECT]},
        ],
        "staticPasswords": [
            {
                "email": "static@example.com",
                "hash": hashed,
                "username": "static",
                "userID": "static-1",
                "name": "Static User",
                "groups": ["ops"],
            }
        ],
    }


def use_config(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_CONFIG", str(path))
    identity_config.reset()
    oidc.configure([])


@pytest.fixture(autouse=True)
def issuer_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = write_config(tmp_path / "berth.yaml", base_identity_config())
    use_config(path, monkeypatch)
    authorizer.invalidate()
    yield path
    monkeypatch.delenv("BERTH_CONFIG")
    identity_config.reset()
    oidc.configure([])
    authorizer.invalidate()


@pytest.fixture
def browser() -> Client:
    """A browser on its own address, speaking https to the issuer."""
    octets = (secrets.randbelow(250) + 1 for _ in range(3))
    return Client(REMOTE_ADDR="10.{}.{}.{}".format(*octets))


@pytest.fixture
def alice() -> User:
    user = User.objects.create_user(
        "alice", "alice@example.com", "alice-pass-1", first_name="Alice", last_name="Liddell"
    )
    user.groups.add(Group.objects.create(name="devs"))
    return user
