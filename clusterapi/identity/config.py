"""The ``identity`` section of ``BERTH_CONFIG``, parsed into typed dataclasses.

The shape follows dex's ``config.yaml`` (camelCase keys, Go-style durations such as ``24h`` or
``1h30m``)::

    identity:
      issuer: https://berth.example.com:6443/dex
      expiry:
        idTokens: 24h
        authRequests: 24h
        deviceRequests: 5m
        refreshTokens: {validIfNotUsedFor: 2160h, absoluteLifetime: 3960h, reuseInterval: 3s}
      signer: {keysRotationPeriod: 6h}
      lockout: {maxFailures: 5, duration: 15m}
      api: {usernameClaim: email, usernamePrefix: "", groupsPrefix: "oidc:"}
      staticClients:
        - {id: kubectl, name: kubectl, public: true, redirectURIs: [http://localhost:8000]}
        # present by default: berth-dashboard (confidential, secret in the data directory)
      enablePasswordDB: true
      staticPasswords:
        - {email: admin@example.com, hash: "$2b$10$...", username: admin, userID: "08a8...",
           groups: [admins]}
      connectors:
        - {type: ldap, id: ldap, name: Corporate LDAP, config: {...}}

Every error is an ``IdentityConfigError`` naming the file, the path inside the document
(``identity.staticClients[1].redirectURIs``) and the reason; ``checks.py`` reports it at
start-up.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clusterapi.config import ConfigError
from clusterapi.config import load as load_document

DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
DEFAULT_PATH = "/dex"
# The connector id dex gives its password database.
LOCAL_CONNECTOR_ID = "local"


class IdentityConfigError(ConfigError):
    """An invalid ``identity`` section: ``<file>: <path>: <reason>``."""

    def __init__(self, source: str, path: str, reason: str) -> None:
        self.source = source
        self.path = path
        self.reason = reason
        super().__init__(f"{source or '<no file>'}: {path}: {reason}")


@dataclass(frozen=True)
class RefreshTokenExpiry:
    """Refresh-token lifetimes; rotation is always on (a used token is replaced)."""

    valid_if_not_used_for: timedelta = timedelta(hours=2160)
    absolute_lifetime: timedelta = timedelta(hours=3960)
    reuse_interval: timedelta = timedelta(seconds=3)


@dataclass(frozen=True)
class Expiry:
    id_tokens: timedelta = timedelta(hours=24)
    auth_requests: timedelta = timedelta(hours=24)
    device_requests: timedelta = timedelta(minutes=5)
    # Authorization codes: ASVS 10.4.3 asks for at most 10 minutes; dex uses 5 minutes.
    auth_codes: timedelta = timedelta(minutes=5)
    refresh_tokens: RefreshTokenExpiry = field(default_factory=RefreshTokenExpiry)


@dataclass(frozen=True)
class Lockout:
    """Brute-force protection for password logins (per username and client IP)."""

    max_failures: int = 5
    duration: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class ApiTrust:
    """How the API maps the built-in issuer's ID tokens to users (see ``trust.py``)."""

    enabled: bool = True
    username_claim: str = "email"
    username_prefix: str = ""
    groups_prefix: str = "oidc:"


@dataclass(frozen=True)
class StaticClient:
    id: str
    name: str = ""
    secret: str = ""
    public: bool = False
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()


# kubectl's client (``manage.py oidc-login``): public, device flow or a loopback redirect like
# kubelogin's; present unless the file defines a client with the same id.
KUBECTL_CLIENT = StaticClient(
    id="kubectl",
    name="kubectl",
    public=True,
    redirect_uris=("http://localhost:8000", "http://localhost:18000"),
)


# The dashboard's client (mozilla-django-oidc, ``dashboard/oidc.py``): confidential, with a
# secret generated once into the data directory; its redirect URIs are on the issuer's own
# server. Present unless the file defines a client with the same id.
DASHBOARD_CLIENT_ID = "berth-dashboard"
DASHBOARD_SECRET_FILE = "dashboard-client-secret"  # noqa: S105 - a file name


def dashboard_client_secret() -> str:
    """The default dashboard client's secret, generated on first use and kept (0600)."""
    from django.conf import settings

    path = Path(settings.DATA_DIR) / DASHBOARD_SECRET_FILE
    if not path.exists():
        # O_EXCL: two processes starting at once keep the first one's secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def dashboard_client(issuer: str) -> StaticClient:
    """The default ``berth-dashboard`` client of an issuer served by this server."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    return StaticClient(
        id=DASHBOARD_CLIENT_ID,
        name="Berth dashboard",
        secret=dashboard_client_secret(),
        redirect_uris=(f"{origin}/oidc/callback/",),
        post_logout_redirect_uris=(f"{origin}/ui/logged-out/",),
    )


@dataclass(frozen=True)
class StaticPassword:
    email: str
    hash: str
    username: str
    user_id: str
    name: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConnectorConfig:
    type: str
    id: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # where it sits in the document, for the connector's own errors


@dataclass(frozen=True)
class IdentityConfig:
    issuer: str
    source: str = ""
    expiry: Expiry = field(default_factory=Expiry)
    keys_rotation_period: timedelta = timedelta(hours=6)
    lockout: Lockout = field(default_factory=Lockout)
    api: ApiTrust = field(default_factory=ApiTrust)
    static_clients: tuple[StaticClient, ...] = ()
    enable_password_db: bool = True
    static_passwords: tuple[StaticPassword, ...] = ()
    connectors: tuple[ConnectorConfig, ...] = ()

    @property
    def path(self) -> str:
        """The URL path the issuer is served under (``/dex`` by default)."""
        return urlsplit(self.issuer).path.rstrip("/")


def parse_duration(value: Any) -> timedelta:
    """A Go duration (``24h``, ``1h30m``, ``3s``, ``500ms``) or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text = str(value).strip()
    if not text or DURATION_RE.sub("", text):
        raise ValueError(f"{value!r} is not a duration like 24h, 10m or 3s")
    seconds = sum(float(n) * DURATION_UNITS[unit] for n, unit in DURATION_RE.findall(text))
    return timedelta(seconds=seconds)


class _Reader:
    """Typed access to one mapping of the document, raising errors that name the path."""

    def __init__(self, source: str, path: str, data: Any) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise IdentityConfigError(source, path, "must be a mapping")
        self.source, self.path, self.data = source, path, data

    def fail(self, key: str, reason: str) -> IdentityConfigError:
        return IdentityConfigError(self.source, f"{self.path}.{key}", reason)

    def child(self, key: str) -> _Reader:
        return _Reader(self.source, f"{self.path}.{key}", self.data.get(key))

    def items(self, key: str) -> list[_Reader]:
        value = self.data.get(key) or []
        if not isinstance(value, list):
            raise self.fail(key, "must be a list")
        return [_Reader(self.source, f"{self.path}.{key}[{i}]", v) for i, v in enumerate(value)]

    def string(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key)
        if value is None or value == "":
            if default is None:
                raise self.fail(key, "is required")
            return default
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, "must be a positive integer")
        return value

    def duration(self, key: str, default: timedelta) -> timedelta:
        if self.data.get(key) is None:
            return default
        try:
            value = parse_duration(self.data[key])
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        if value <= timedelta(0) and key != "reuseInterval":
            raise self.fail(key, "must be positive")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "must be a list of non-empty strings")
        return tuple(value)


def _url(reader: _Reader, key: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise reader.fail(key, f"{value!r} is not an absolute http(s) URL")
    return value


def _client(reader: _Reader) -> StaticClient:
    public = reader.boolean("public", False)
    secret = reader.string("secret", "")
    if env := reader.string("secretEnv", ""):
        secret = os.environ.get(env, "")
        if not secret:
            raise reader.fail("secretEnv", f"environment variable {env} is not set")
    if public and secret:
        raise reader.fail("secret", "a public client has no secret")
    if not public and not secret:
        raise reader.fail("secret", "a confidential client needs secret or secretEnv")
    redirects = reader.strings("redirectURIs")
    for uri in redirects:
        _url(reader, "redirectURIs", uri)
    logouts = reader.strings("postLogoutRedirectURIs")
    for uri in logouts:
        _url(reader, "postLogoutRedirectURIs", uri)
    client_id = reader.string("id")
    return StaticClient(
        id=client_id,
        name=reader.string("name", client_id),
        secret=secret,
        public=public,
        redirect_uris=redirects,
        post_logout_redirect_uris=logouts,
    )


def _password(reader: _Reader) -> StaticPassword:
    hashed = reader.string("hash")
    if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
        raise reader.fail("hash", "must be a bcrypt hash ($2a$, $2b$ or $2y$)")
    email = reader.string("email")
    return StaticPassword(
        email=email,
        hash=hashed,
        username=reader.string("username", email),
        user_id=reader.string("userID"),
        name=reader.string("name", ""),
        groups=reader.strings("groups"),
    )


def _connector(reader: _Reader) -> ConnectorConfig:
    from clusterapi.identity.connectors import CONNECTOR_TYPES

    kind = reader.string("type")
    if kind not in CONNECTOR_TYPES:
        raise reader.fail("type", f"unknown connector type {kind!r} ({sorted(CONNECTOR_TYPES)})")
    connector_id = reader.string("id")
    config = ConnectorConfig(
        type=kind,
        id=connector_id,
        name=reader.string("name", connector_id),
        config=dict(reader.child("config").data),
        path=f"{reader.path}.config",
    )
    # Each connector type parses its own settings; errors name their path in the document.
    CONNECTOR_TYPES[kind].parse(reader.source, config)
    return config


def _unique(readers: list[_Reader], values: list[str], key: str) -> None:
    seen: set[str] = set()
    for reader, value in zip(readers, values, strict=True):
        if value in seen:
            raise reader.fail(key, f"{value!r} is used twice")
        seen.add(value)


def default_issuer() -> str:
    """``BERTH_ISSUER_URL``, else the server's own HTTPS URL + ``/dex``."""
    if url := os.environ.get("BERTH_ISSUER_URL"):
        return url.rstrip("/")
    from clusterapi.bootstrap import server_url

    return server_url().rstrip("/") + DEFAULT_PATH


def parse(document: dict[str, Any], source: str = "") -> IdentityConfig:
    """The identity configuration of a whole ``BERTH_CONFIG`` document."""
    root = _Reader(source, "identity", document.get("identity"))
    issuer = root.string("issuer", "") or default_issuer()
    _url(root, "issuer", issuer)
    expiry = root.child("expiry")
    refresh = expiry.child("refreshTokens")
    signer = root.child("signer")
    signer_config = signer.child("config") if "config" in signer.data else signer
    lockout = root.child("lockout")
    api = root.child("api")

    client_readers = root.items("staticClients")
    clients = [_client(r) for r in client_readers]
    _unique(client_readers, [c.id for c in clients], "id")
    if not any(c.id == KUBECTL_CLIENT.id for c in clients):
        clients.append(KUBECTL_CLIENT)
    if not any(c.id == DASHBOARD_CLIENT_ID for c in clients):
        clients.append(dashboard_client(issuer))
    password_readers = root.items("staticPasswords")
    passwords = [_password(r) for r in password_readers]
    _unique(password_readers, [p.email.lower() for p in passwords], "email")
    connector_readers = root.items("connectors")
    connectors = [_connector(r) for r in connector_readers]
    _unique(connector_readers, [c.id for c in connectors], "id")
    for reader, connector in zip(connector_readers, connectors, strict=True):
        if connector.id == LOCAL_CONNECTOR_ID:
            raise reader.fail("id", f"{LOCAL_CONNECTOR_ID!r} is the password database's id")

    return IdentityConfig(
        issuer=issuer.rstrip("/"),
        source=source,
        expiry=Expiry(
            id_tokens=expiry.duration("idTokens", timedelta(hours=24)),
            auth_requests=expiry.duration("authRequests", timedelta(hours=24)),
            device_requests=expiry.duration("deviceRequests", timedelta(minutes=5)),
            refresh_tokens=RefreshTokenExpiry(
                valid_if_not_used_for=refresh.duration("validIfNotUsedFor", timedelta(hours=2160)),
                absolute_lifetime=refresh.duration("absoluteLifetime", timedelta(hours=3960)),
                reuse_interval=refresh.duration("reuseInterval", timedelta(seconds=3)),
            ),
        ),
        keys_rotation_period=signer_config.duration("keysRotationPeriod", timedelta(hours=6)),
        lockout=Lockout(
            max_failures=lockout.integer("maxFailures", 5),
            duration=lockout.duration("duration", timedelta(minutes=15)),
        ),
        api=ApiTrust(
            enabled=api.boolean("enabled", True),
            username_claim=api.string("usernameClaim", "email"),
            username_prefix=api.string("usernamePrefix", ""),
            groups_prefix=api.string("groupsPrefix", "oidc:"),
        ),
        static_clients=tuple(clients),
        enable_password_db=root.boolean("enablePasswordDB", True),
        static_passwords=tuple(passwords),
        connectors=tuple(connectors),
    )


def _server_stamp() -> int:
    """When ``up`` last recorded the server's URL (``server.json``): the default issuer and
    the dashboard client's URIs follow it, and ``up`` records it after the start-up checks
    have already read this configuration."""
    from django.conf import settings

    try:
        return (Path(settings.DATA_DIR) / "server.json").stat().st_mtime_ns
    except OSError:
        return 0


@functools.cache
def _get(server_stamp: int) -> IdentityConfig:
    return parse(load_document(), os.environ.get("BERTH_CONFIG", ""))


def get() -> IdentityConfig:
    """The identity configuration of this process (``BERTH_CONFIG``), parsed once per
    recorded server URL."""
    return _get(_server_stamp())


def url_prefix() -> str:
    """The issuer's path for the URL configuration (``dex/``); a broken configuration falls
    back to the default so that the start-up check, not an import error, reports it."""
    try:
        path = get().path.strip("/")
    except ConfigError:
        path = ""
    return (path or DEFAULT_PATH.strip("/")) + "/"


def reset() -> None:
    """Forget the parsed configuration (tests that change ``BERTH_CONFIG``)."""
    _get.cache_clear()
    load_document.cache_clear()
