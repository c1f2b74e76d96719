"""The connector interface: how the issuer asks an upstream user store who someone is.

A connector checks a username and password (``login``) and, when a refresh token is used,
checks again that the user still exists and may log in (``refresh``), returning the user's
current identity (groups may have changed) or None. The issuer never stores passwords of
connector users; it stores the ``Identity`` a connector returned (in the session, codes and
refresh tokens) and asks the connector again on every refresh, as dex does with
``RefreshConnector``.

A connector type is a class with a ``TYPE`` name, a ``parse`` class method that validates the
``config:`` mapping of a ``connectors[]`` entry (raising ``IdentityConfigError`` with the path
inside the document) and a constructor taking the parsed ``ConnectorConfig``. The types are
listed in ``connectors.CONNECTOR_TYPES``.

A redirect connector (``RedirectConnector``, dex's ``CallbackConnector``; the upstream OIDC
connector) has no password form: the login page sends the browser to the upstream
(``login_url``), which sends it back to the issuer's ``/callback``, where ``handle_callback``
turns the upstream's answer into an ``Identity``. What ``login_url`` asks to keep (a nonce, a
PKCE verifier) waits in the issuer session under the OAuth ``state`` until then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Identity:
    """A user as a connector sees them; what ID-token claims are made from.

    ``user_id`` is stable within the connector (dex's ``UserID``) and, with ``connector_id``,
    makes the token's opaque ``sub``. ``connector_data`` is whatever the connector needs to
    re-check the user on refresh (the LDAP entry's DN, for one).
    """

    user_id: str
    username: str
    connector_id: str
    email: str = ""
    email_verified: bool = False
    name: str = ""
    groups: tuple[str, ...] = ()
    connector_data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = list(self.groups)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(
            user_id=str(data["user_id"]),
            username=str(data["username"]),
            connector_id=str(data["connector_id"]),
            email=str(data.get("email", "")),
            email_verified=bool(data.get("email_verified", False)),
            name=str(data.get("name", "")),
            groups=tuple(str(g) for g in data.get("groups", ())),
            connector_data=dict(data.get("connector_data") or {}),
        )

    # authlib asks the "user" of a grant for its id (``get_user_id``) in a few places.
    def get_user_id(self) -> str:
        return self.user_id


@runtime_checkable
class Connector(Protocol):
    """A password connector (local users, static passwords, LDAP)."""

    TYPE: str
    id: str
    name: str

    def login(self, username: str, password: str) -> Identity | None:
        """The identity of a user whose password is right, or None."""

    def refresh(self, identity: Identity) -> Identity | None:
        """The user's current identity, or None when they are gone or disabled."""


@runtime_checkable
class RedirectConnector(Protocol):
    """A connector whose users log in at the upstream's own pages (upstream OIDC)."""

    TYPE: str
    id: str
    name: str

    def login_url(self, state: str) -> tuple[str, dict[str, Any]]:
        """Where to send the browser for ``state``, and what to keep until it comes back."""

    def handle_callback(self, query: Mapping[str, str], kept: Mapping[str, Any]) -> Identity:
        """The identity from the upstream's answer (the callback's query string and what
        ``login_url`` kept); raises ``ConnectorError`` when the answer is refused."""

    def refresh(self, identity: Identity) -> Identity | None:
        """The user's current identity, or None when the upstream ended their session."""


class ConnectorError(Exception):
    """The upstream store could not be asked (LDAP down): shown as such, not as a bad password."""
