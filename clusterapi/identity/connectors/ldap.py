"""LDAP connector: bind + search, as dex's ``ldap`` connector, on the ``ldap3`` library.

Login: bind with the service account (``bindDN``/``bindPW``, or anonymously), find exactly one
entry under ``userSearch.baseDN`` whose ``userSearch.username`` attribute equals what the user
typed (and that matches ``userSearch.filter``), then bind as that entry's DN with the typed
password. An empty password is refused before any bind: many servers treat it as an anonymous
bind and would "succeed". Groups are the ``groupSearch.nameAttr`` of the entries under
``groupSearch.baseDN`` whose ``groupAttr`` holds the user's ``userAttr`` (``userMatchers``).
Refresh searches the user again by username: gone, or moved to another DN, means no refresh.

TLS, as dex: LDAPS on port 636 by default; ``startTLS`` upgrades a plain connection on 389;
``insecureNoSSL`` talks plain LDAP; ``insecureSkipVerify`` skips certificate checks; ``rootCA``
names a CA file to trust. Every value typed by a user is escaped before it enters a filter.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from clusterapi.identity.config import ConnectorConfig, IdentityConfigError
from clusterapi.identity.connectors.base import ConnectorError, Identity

SCOPES = {"sub": ldap3.SUBTREE, "one": ldap3.LEVEL, "": ldap3.SUBTREE}
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class UserMatcher:
    user_attr: str
    group_attr: str


@dataclass(frozen=True)
class UserSearch:
    base_dn: str
    username: str
    id_attr: str
    email_attr: str
    filter: str = ""
    scope: str = "sub"
    name_attr: str = ""
    preferred_username_attr: str = ""
    email_suffix: str = ""


@dataclass(frozen=True)
class GroupSearch:
    base_dn: str
    name_attr: str
    user_matchers: tuple[UserMatcher, ...]
    filter: str = ""
    scope: str = "sub"


@dataclass(frozen=True)
class LDAPSettings:
    host: str
    port: int
    use_ssl: bool
    start_tls: bool
    insecure_skip_verify: bool
    root_ca: str
    bind_dn: str
    bind_pw: str
    user_search: UserSearch
    group_search: GroupSearch | None
    username_prompt: str = "Username"


def _text(source: str, path: str, data: dict[str, Any], key: str, default: str | None) -> str:
    value = data.get(key, default)
    if value is None or value == "":
        if default is None:
            raise IdentityConfigError(source, f"{path}.{key}", "is required")
        return default
    if not isinstance(value, str):
        raise IdentityConfigError(source, f"{path}.{key}", "must be a string")
    return value


def _flag(source: str, path: str, data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise IdentityConfigError(source, f"{path}.{key}", "must be true or false")
    return value


def _mapping(source: str, path: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise IdentityConfigError(source, f"{path}.{key}", "must be a mapping")
    return value


def _scope(source: str, path: str, data: dict[str, Any]) -> str:
    scope = _text(source, path, data, "scope", "sub")
    if scope not in SCOPES:
        raise IdentityConfigError(source, f"{path}.scope", "must be sub or one")
    return scope


def settings_from(source: str, config: ConnectorConfig) -> LDAPSettings:
    """Parse and check the ``config:`` of an ``ldap`` connector (dex's field names)."""
    path, data = config.path, config.config
    host_port = _text(source, path, data, "host", None)
    no_ssl = _flag(source, path, data, "insecureNoSSL")
    start_tls = _flag(source, path, data, "startTLS")
    if no_ssl and start_tls:
        raise IdentityConfigError(source, f"{path}.startTLS", "cannot be used with insecureNoSSL")
    host, _, port_text = host_port.rpartition(":") if ":" in host_port else (host_port, "", "")
    if port_text and not port_text.isdigit():
        raise IdentityConfigError(source, f"{path}.host", f"bad port in {host_port!r}")
    port = int(port_text) if port_text else (389 if no_ssl or start_tls else 636)
    root_ca = _text(source, path, data, "rootCA", "")
    if root_ca:
        try:
            ssl.create_default_context(cafile=root_ca)
        except (OSError, ssl.SSLError) as exc:
            raise IdentityConfigError(source, f"{path}.rootCA", f"cannot load: {exc}") from None

    user_path = f"{path}.userSearch"
    user = _mapping(source, path, data, "userSearch")
    email_suffix = _text(source, user_path, user, "emailSuffix", "")
    user_search = UserSearch(
        base_dn=_text(source, user_path, user, "baseDN", None),
        username=_text(source, user_path, user, "username", None),
        id_attr=_text(source, user_path, user, "idAttr", "uid"),
        email_attr=_text(source, user_path, user, "emailAttr", "" if email_suffix else "mail"),
        filter=_text(source, user_path, user, "filter", ""),
        scope=_scope(source, user_path, user),
        name_attr=_text(source, user_path, user, "nameAttr", ""),
        preferred_username_attr=_text(source, user_path, user, "preferredUsernameAttr", ""),
        email_suffix=email_suffix,
    )

    group_search = None
    group_path = f"{path}.groupSearch"
    group = _mapping(source, path, data, "groupSearch")
    if group:
        matchers_data = group.get("userMatchers")
        if matchers_data is None and ("userAttr" in group or "groupAttr" in group):
            matchers_data = [
                {"userAttr": group.get("userAttr"), "groupAttr": group.get("groupAttr")}
            ]
        if not isinstance(matchers_data, list) or not matchers_data:
            raise IdentityConfigError(
                source, f"{group_path}.userMatchers", "needs at least one {userAttr, groupAttr}"
            )
        matchers = []
        for index, entry in enumerate(matchers_data):
            entry_path = f"{group_path}.userMatchers[{index}]"
            if not isinstance(entry, dict):
                raise IdentityConfigError(source, entry_path, "must be a mapping")
            matchers.append(
                UserMatcher(
                    user_attr=_text(source, entry_path, entry, "userAttr", None),
                    group_attr=_text(source, entry_path, entry, "groupAttr", None),
                )
            )
        group_search = GroupSearch(
            base_dn=_text(source, group_path, group, "baseDN", None),
            name_attr=_text(source, group_path, group, "nameAttr", None),
            user_matchers=tuple(matchers),
            filter=_text(source, group_path, group, "filter", ""),
            scope=_scope(source, group_path, group),
        )

    return LDAPSettings(
        host=host,
        port=port,
        use_ssl=not (no_ssl or start_tls),
        start_tls=start_tls,
        insecure_skip_verify=_flag(source, path, data, "insecureSkipVerify"),
        root_ca=root_ca,
        bind_dn=_text(source, path, data, "bindDN", ""),
        bind_pw=_text(source, path, data, "bindPW", ""),
        user_search=user_search,
        group_search=group_search,
        username_prompt=_text(source, path, data, "usernamePrompt", "Username"),
    )


def _and(*filters: str) -> str:
    parts = [f if f.startswith("(") else f"({f})" for f in filters if f]
    return parts[0] if len(parts) == 1 else "(&" + "".join(parts) + ")"


def _first(entry: Any, attr: str) -> str:
    if not attr:
        return ""
    if attr.lower() == "dn":
        return str(entry.entry_dn)
    values = entry.entry_attributes_as_dict.get(attr) or []
    for key, found in entry.entry_attributes_as_dict.items():
        if not values and key.lower() == attr.lower():
            values = found
    if not values:
        return ""
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


class LDAPConnector:
    """Users and groups from an LDAP directory."""

    TYPE = "ldap"

    def __init__(self, config: ConnectorConfig, source: str = "") -> None:
        self.id = config.id
        self.name = config.name
        self.settings = settings_from(source, config)

    @classmethod
    def parse(cls, source: str, config: ConnectorConfig) -> None:
        settings_from(source, config)

    # --- connections ------------------------------------------------------------------------

    def _server(self) -> ldap3.Server:
        s = self.settings
        tls = None
        if s.use_ssl or s.start_tls:
            tls = ldap3.Tls(
                validate=ssl.CERT_NONE if s.insecure_skip_verify else ssl.CERT_REQUIRED,
                ca_certs_file=s.root_ca or None,
            )
        return ldap3.Server(
            s.host, port=s.port, use_ssl=s.use_ssl, tls=tls, connect_timeout=TIMEOUT_SECONDS
        )

    def _bind(self, user: str, password: str) -> ldap3.Connection | None:
        """A bound connection, or None when the credentials are refused."""
        connection = ldap3.Connection(
            self._server(),
            user=user or None,
            password=password or None,
            receive_timeout=TIMEOUT_SECONDS,
            raise_exceptions=False,
        )
        try:
            connection.open()
            if self.settings.start_tls:
                connection.start_tls()
            if not connection.bind():
                connection.unbind()
                return None
        except LDAPException as exc:
            raise ConnectorError(f"LDAP server {self.settings.host}: {exc}") from exc
        return connection

    def _service(self) -> ldap3.Connection:
        connection = self._bind(self.settings.bind_dn, self.settings.bind_pw)
        if connection is None:
            raise ConnectorError("LDAP: the service account (bindDN) was refused")
        return connection

    # --- searches ----------------------------------------------------------------------------

    def _attributes(self) -> list[str]:
        us = self.settings.user_search
        wanted = {us.username, us.id_attr, us.email_attr, us.name_attr, us.preferred_username_attr}
        if self.settings.group_search:
            wanted.update(m.user_attr for m in self.settings.group_search.user_matchers)
        return sorted(a for a in wanted if a and a.lower() != "dn")

    def _find_user(self, connection: ldap3.Connection, username: str) -> Any | None:
        us = self.settings.user_search
        query = _and(us.filter, f"({us.username}={escape_filter_chars(username)})")
        connection.search(
            us.base_dn, query, search_scope=SCOPES[us.scope], attributes=self._attributes()
        )
        entries = list(connection.entries)
        return entries[0] if len(entries) == 1 else None

    def _groups(self, connection: ldap3.Connection, entry: Any) -> tuple[str, ...]:
        gs = self.settings.group_search
        if gs is None:
            return ()
        names: list[str] = []
        for matcher in gs.user_matchers:
            value = _first(entry, matcher.user_attr)
            if not value:
                continue
            query = _and(gs.filter, f"({matcher.group_attr}={escape_filter_chars(value)})")
            connection.search(
                gs.base_dn, query, search_scope=SCOPES[gs.scope], attributes=[gs.name_attr]
            )
            for group in connection.entries:
                name = _first(group, gs.name_attr)
                if name and name not in names:
                    names.append(name)
        return tuple(names)

    def _identity(self, connection: ldap3.Connection, entry: Any, username: str) -> Identity:
        us = self.settings.user_search
        user_id = _first(entry, us.id_attr)
        if not user_id:
            raise ConnectorError(f"LDAP: entry {entry.entry_dn} has no {us.id_attr}")
        email = _first(entry, us.email_attr) if us.email_attr else ""
        if not email and us.email_suffix:
            email = f"{_first(entry, us.username) or username}@{us.email_suffix}"
        preferred = _first(entry, us.preferred_username_attr) or username
        return Identity(
            user_id=user_id,
            username=preferred,
            connector_id=self.id,
            email=email,
            email_verified=bool(email),
            name=_first(entry, us.name_attr) or preferred,
            groups=self._groups(connection, entry),
            connector_data={"dn": str(entry.entry_dn), "username": username},
        )

    # --- the connector interface -------------------------------------------------------------

    def login(self, username: str, password: str) -> Identity | None:
        if not username or not password:
            return None  # an empty password would be an anonymous ("unauthenticated") bind
        service = self._service()
        try:
            entry = self._find_user(service, username)
            if entry is None:
                return None
            user_connection = self._bind(str(entry.entry_dn), password)
            if user_connection is None:
                return None
            user_connection.unbind()
            return self._identity(service, entry, username)
        except LDAPException as exc:
            raise ConnectorError(f"LDAP: {exc}") from exc
        finally:
            service.unbind()

    def refresh(self, identity: Identity) -> Identity | None:
        username = str(identity.connector_data.get("username", ""))
        if not username:
            return None
        service = self._service()
        try:
            entry = self._find_user(service, username)
            if entry is None or str(entry.entry_dn) != identity.connector_data.get("dn"):
                return None
            return self._identity(service, entry, username)
        except LDAPException as exc:
            raise ConnectorError(f"LDAP: {exc}") from exc
        finally:
            service.unbind()
