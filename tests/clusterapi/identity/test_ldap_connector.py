"""The LDAP connector against a real OpenLDAP ``slapd`` (bind + search, groups, refresh)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from clusterapi.identity.config import ConnectorConfig
from clusterapi.identity.connectors.ldap import LDAPConnector
from tests.clusterapi.identity.conftest import base_identity_config, use_config, write_config
from tests.clusterapi.identity.helpers import (
    CLI_REDIRECT,
    auth_params,
    get,
    location,
    pkce,
    post,
    query_of,
    token_request,
    verify,
)
from tests.clusterapi.identity.slapd import Slapd, ldap_connector_config, user_dn

pytestmark = pytest.mark.django_db


def connector(server: Slapd) -> LDAPConnector:
    entry = ldap_connector_config(server)
    return LDAPConnector(
        ConnectorConfig(
            type="ldap",
            id=entry["id"],
            name=entry["name"],
            config=entry["config"],
            path="identity.connectors[0].config",
        )
    )


def test_a_user_logs_in_with_bind_and_search_and_gets_their_groups(slapd: Slapd) -> None:
    identity = connector(slapd).login("jane", "jane-pass-1")
    assert identity is not None
    assert identity.username == "jane"
    assert identity.user_id == "10001"
    assert identity.email == "jane@example.org" and identity.email_verified
    assert identity.name == "Jane Doe"
    assert identity.connector_id == "ldap"
    assert sorted(identity.groups) == ["berth-viewers", "developers"]
    assert identity.connector_data["dn"] == user_dn("jane")


def test_groups_are_only_those_that_list_the_user(slapd: Slapd) -> None:
    identity = connector(slapd).login("john", "john-pass-1")
    assert identity is not None and identity.groups == ("developers",)


@pytest.mark.parametrize(
    ("username", "password"),
    [("jane", "wrong"), ("jane", ""), ("", "jane-pass-1"), ("nobody", "jane-pass-1")],
)
def test_wrong_empty_or_unknown_credentials_are_refused(
    slapd: Slapd, username: str, password: str
) -> None:
    assert connector(slapd).login(username, password) is None


def test_filter_characters_typed_as_a_username_find_nobody(slapd: Slapd) -> None:
    assert connector(slapd).login("*", "jane-pass-1") is None
    assert connector(slapd).login("jane)(uid=*", "jane-pass-1") is None


def test_refresh_returns_the_current_identity_and_fails_once_the_user_is_deleted(
    slapd: Slapd,
) -> None:
    ldap = connector(slapd)
    slapd.add_user("temp", 10050, "Temp Worker", "temp-pass-1")
    identity = ldap.login("temp", "temp-pass-1")
    assert identity is not None
    refreshed = ldap.refresh(identity)
    assert refreshed is not None and refreshed.email == "temp@example.org"
    slapd.delete_user("temp")
    assert ldap.refresh(identity) is None


def test_the_issuer_refuses_to_refresh_a_deleted_ldap_user(
    slapd: Slapd, browser: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = base_identity_config()
    identity["connectors"] = [ldap_connector_config(slapd)]
    use_config(write_config(tmp_path / "ldap.yaml", identity), monkeypatch)
    slapd.add_user("leaver", 10060, "Lea Ver", "leaver-pass-1")

    verifier, challenge = pkce()
    choose = get(browser, "/dex/auth", **auth_params(challenge=challenge))
    assert choose.status_code == 200 and b"Corporate LDAP" in choose.content  # two connectors
    found = re.search(r'href="(/dex/auth/ldap\?req=[^"]+)"', choose.content.decode())
    assert found is not None, choose.content
    login_url = found.group(1)
    back = location(post(browser, login_url, {"login": "leaver", "password": "leaver-pass-1"}))
    done = location(get(browser, back))
    assert done.startswith(CLI_REDIRECT), done
    status, body = token_request(
        browser,
        grant_type="authorization_code",
        code=query_of(done)["code"],
        redirect_uri=CLI_REDIRECT,
        client_id="cli",
        code_verifier=verifier,
    )
    assert status == 200, body
    claims = verify(browser, str(body["id_token"]))
    assert claims["email"] == "leaver@example.org" and claims["groups"] == []

    refresh = {"grant_type": "refresh_token", "client_id": "cli"}
    status, again = token_request(browser, refresh_token=body["refresh_token"], **refresh)
    assert status == 200, again
    slapd.delete_user("leaver")
    status, refused = token_request(browser, refresh_token=again["refresh_token"], **refresh)
    assert status == 400 and refused["error"] == "invalid_grant", refused
