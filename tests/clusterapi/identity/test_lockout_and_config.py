"""Brute-force lockout on the login form, and configuration errors that name their path."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core import checks
from django.test import Client

from clusterapi.identity import config as identity_config
from clusterapi.identity import connectors
from clusterapi.identity.config import IdentityConfigError
from clusterapi.identity.connectors.base import Connector
from clusterapi.identity.connectors.ldap import LDAPConnector
from tests.clusterapi.identity.conftest import base_identity_config, use_config, write_config
from tests.clusterapi.identity.helpers import auth_params, get, location, log_in, pkce, post

pytestmark = pytest.mark.django_db


def address() -> str:
    """A fresh client IP: the lockout counters live in the shared cache between runs."""
    return "10.{}.{}.{}".format(*(secrets.randbelow(250) + 1 for _ in range(3)))


def login_url(browser: Client) -> str:
    _, challenge = pkce()
    return location(get(browser, "/dex/auth", **auth_params(challenge=challenge)))


def test_lockout_after_failures_even_with_the_right_password(alice: User) -> None:
    browser = Client(REMOTE_ADDR=address())
    url = login_url(browser)
    for _ in range(3):
        assert post(browser, url, {"login": "alice", "password": "bad"}).status_code == 401
    locked = post(browser, url, {"login": "alice", "password": "alice-pass-1"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content and b"10 minutes" in locked.content
    # Another address is not locked out: an attacker cannot lock alice out everywhere.
    other = Client(REMOTE_ADDR=address())
    _, challenge = pkce()
    done = log_in(other, auth_params(challenge=challenge), "alice", "alice-pass-1")
    assert "code=" in done


def test_a_success_clears_the_failure_count(alice: User) -> None:
    ip = address()
    browser = Client(REMOTE_ADDR=ip)
    url = login_url(browser)
    for _ in range(2):
        assert post(browser, url, {"login": "alice", "password": "bad"}).status_code == 401
    assert post(browser, url, {"login": "alice", "password": "alice-pass-1"}).status_code == 302
    browser = Client(REMOTE_ADDR=ip)
    url = login_url(browser)
    for _ in range(2):
        assert post(browser, url, {"login": "alice", "password": "bad"}).status_code == 401
    assert post(browser, url, {"login": "alice", "password": "alice-pass-1"}).status_code == 302


def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **changes: object) -> str:
    data = base_identity_config()
    data.update(changes)
    use_config(write_config(tmp_path / "broken.yaml", data), monkeypatch)
    with pytest.raises(IdentityConfigError) as caught:
        identity_config.get()
    assert str(tmp_path / "broken.yaml") in str(caught.value)
    return caught.value.path


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        (
            {
                "staticClients": [
                    {"id": "a", "public": True},
                    {"id": "b", "public": True, "redirectURIs": ["not a url"]},
                ]
            },
            "identity.staticClients[1].redirectURIs",
        ),
        ({"staticClients": [{"id": "a"}]}, "identity.staticClients[0].secret"),
        (
            {"staticClients": [{"id": "a", "secretEnv": "BERTH_NOPE_UNSET"}]},
            "identity.staticClients[0].secretEnv",
        ),
        ({"expiry": {"idTokens": "soon"}}, "identity.expiry.idTokens"),
        ({"signer": {"keysRotationPeriod": "-1h"}}, "identity.signer.keysRotationPeriod"),
        (
            {"staticPasswords": [{"email": "x@example.com", "hash": "plain", "userID": "1"}]},
            "identity.staticPasswords[0].hash",
        ),
        ({"connectors": [{"type": "saml", "id": "s"}]}, "identity.connectors[0].type"),
        (
            {"connectors": [{"type": "ldap", "id": "l", "config": {"host": "ldap:636"}}]},
            "identity.connectors[0].config.userSearch.baseDN",
        ),
        (
            {
                "connectors": [
                    {
                        "type": "ldap",
                        "id": "l",
                        "config": {"host": "ldap", "insecureNoSSL": True, "startTLS": True},
                    }
                ]
            },
            "identity.connectors[0].config.startTLS",
        ),
        (
            {
                "connectors": [
                    {
                        "type": "ldap",
                        "id": "l",
                        "config": {
                            "host": "ldap",
                            "userSearch": {"baseDN": "dc=x", "username": "uid"},
                            "groupSearch": {"baseDN": "ou=g", "nameAttr": "cn"},
                        },
                    }
                ]
            },
            "identity.connectors[0].config.groupSearch.userMatchers",
        ),
    ],
)
def test_config_errors_name_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, object], path: str
) -> None:
    assert broken(tmp_path, monkeypatch, **changes) == path


def test_config_error_is_a_startup_check_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken(tmp_path, monkeypatch, expiry={"idTokens": "soon"})
    errors = [m for m in checks.run_checks() if m.id == "berth.identity.E001"]
    assert len(errors) == 1 and "identity.expiry.idTokens" in errors[0].msg


def test_durations_parse_like_go() -> None:
    assert identity_config.parse_duration("1h30m").total_seconds() == 5400
    assert identity_config.parse_duration("500ms").total_seconds() == 0.5
    assert identity_config.parse_duration(90).total_seconds() == 90


def test_ldap_config_is_parsed_like_dex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base_identity_config()
    data["connectors"] = [
        {
            "type": "ldap",
            "id": "corp",
            "name": "Corporate LDAP",
            "config": {
                "host": "ldap.example.com",
                "startTLS": True,
                "insecureSkipVerify": True,
                "bindDN": "cn=admin,dc=example,dc=com",
                "bindPW": "secret",
                "userSearch": {
                    "baseDN": "ou=people,dc=example,dc=com",
                    "filter": "(objectClass=person)",
                    "username": "uid",
                    "idAttr": "uid",
                    "emailAttr": "mail",
                    "nameAttr": "cn",
                },
                "groupSearch": {
                    "baseDN": "ou=groups,dc=example,dc=com",
                    "filter": "(objectClass=groupOfNames)",
                    "userMatchers": [{"userAttr": "DN", "groupAttr": "member"}],
                    "nameAttr": "cn",
                },
            },
        }
    ]
    use_config(write_config(tmp_path / "ldap.yaml", data), monkeypatch)
    enabled = connectors.enabled(identity_config.get())
    assert list(enabled) == ["local", "corp"]
    ldap = enabled["corp"]
    assert isinstance(ldap, LDAPConnector)
    settings = ldap.settings
    assert (settings.host, settings.port, settings.use_ssl, settings.start_tls) == (
        "ldap.example.com",
        389,
        False,
        True,
    )
    assert settings.group_search is not None
    assert settings.group_search.user_matchers[0].group_attr == "member"
    # Empty passwords never reach the server (an anonymous bind would "succeed").
    assert ldap.login("alice", "") is None
    # With two connectors the login page lists both.
    _, challenge = pkce()
    page = get(Client(), "/dex/auth", **auth_params(challenge=challenge))
    assert page.status_code == 200
    assert b"Log in with Corporate LDAP" in page.content and b"Log in with Email" in page.content


def test_every_connector_satisfies_the_protocol() -> None:
    for connector in connectors.enabled(identity_config.get()).values():
        assert isinstance(connector, Connector)
    for kind in connectors.CONNECTOR_TYPES.values():
        assert callable(kind.parse) and kind.TYPE
