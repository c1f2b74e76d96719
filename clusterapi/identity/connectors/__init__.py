"""Connectors: the upstream user stores the issuer logs people in with (see ``base.py``).

``CONNECTOR_TYPES`` is the table of contents: one module per type. The password database
(``local``: Django users and static passwords) is enabled by ``enablePasswordDB``; the others
come from ``identity.connectors[]`` in the configuration file.
"""

from __future__ import annotations

from clusterapi.identity.config import IdentityConfig
from clusterapi.identity.connectors.base import (
    Connector,
    ConnectorError,
    Identity,
    RedirectConnector,
)
from clusterapi.identity.connectors.ldap import LDAPConnector
from clusterapi.identity.connectors.local import LocalConnector
from clusterapi.identity.connectors.oidc import OIDCConnector

CONNECTOR_TYPES: dict[str, type[LDAPConnector] | type[OIDCConnector]] = {
    LDAPConnector.TYPE: LDAPConnector,
    OIDCConnector.TYPE: OIDCConnector,
}

__all__ = [
    "CONNECTOR_TYPES",
    "Connector",
    "ConnectorError",
    "Identity",
    "RedirectConnector",
    "enabled",
]


def enabled(config: IdentityConfig) -> dict[str, Connector | RedirectConnector]:
    """The connectors of a configuration, by id, in the order the login page lists them."""
    connectors: dict[str, Connector | RedirectConnector] = {}
    if config.enable_password_db or config.static_passwords:
        connectors[LocalConnector.TYPE] = LocalConnector(config.static_passwords)
    for entry in config.connectors:
        connectors[entry.id] = CONNECTOR_TYPES[entry.type](entry, config.source)
    return connectors
