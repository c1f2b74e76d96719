"""Berth's configuration file (``BERTH_CONFIG``): a dex-like YAML document.

This module reads the parts the control plane needs; the identity provider (issue: built-in
OIDC issuer) adds issuer, clients, static passwords and connectors. Errors name the file, the
path inside it and the reason, and are raised at start-up.

    authentication:
      tokenFile: /etc/berth/tokens.csv
      oidc:
        - issuer: https://login.example.com
          audiences: [berth]
          usernameClaim: email
          groupsClaim: groups
          groupsPrefix: "oidc:"
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration problem: ``<file>: <path>: <reason>``."""


@functools.cache
def load() -> dict[str, Any]:
    path = os.environ.get("BERTH_CONFIG", "")
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the document must be a mapping")
    return data


def oidc_authenticators() -> list[Any]:
    from clusterapi.authn.oidc import IssuerConfig

    source = os.environ.get("BERTH_CONFIG", "")
    entries = (load().get("authentication") or {}).get("oidc") or []
    configs = []
    for index, entry in enumerate(entries):
        where = f"{source}: authentication.oidc[{index}]"
        if not isinstance(entry, dict) or not entry.get("issuer"):
            raise ConfigError(f"{where}: issuer is required")
        if not (entry.get("audiences") or entry.get("audience")):
            raise ConfigError(f"{where}: audiences is required")
        configs.append(IssuerConfig.from_dict(entry))
    return configs
