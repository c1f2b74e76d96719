"""``manage.py kubeconfig --user NAME [--group G ...] [--server URL]``: print a kubeconfig.

``manage.py kubeconfig --oidc`` prints one whose user logs in through the issuer instead:
kubectl runs ``manage.py oidc-login`` (an exec credential plugin) for its token.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusterapi import bootstrap
from clusterapi.authn import tokens

MANAGE_PY = Path(__file__).resolve().parents[3] / "manage.py"
OIDC_USER = "oidc"


def oidc_user(issuer: str, ca_file: str) -> dict[str, Any]:
    """The kubeconfig user entry that runs ``manage.py oidc-login`` for its token."""
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(MANAGE_PY), "oidc-login", "--issuer", issuer, "--ca-file", ca_file],
            # The plugin loads Berth's settings: keep them on this instance's data directory.
            "env": [{"name": "BERTH_DATA_DIR", "value": str(settings.DATA_DIR)}],
            # The device flow prints its URL and code; it reads nothing from the terminal.
            "interactiveMode": "IfAvailable",
            "provideClusterInfo": False,
        }
    }


class Command(BaseCommand):
    help = "Print a kubeconfig with a new bearer token for the given identity."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", default=None, help="user name the token authenticates as")
        parser.add_argument(
            "--group", action="append", default=[], help="group of the user (repeatable)"
        )
        parser.add_argument(
            "--server", default=None, help="API server URL (default: this instance's)"
        )
        parser.add_argument(
            "--oidc",
            action="store_true",
            help="log in through the OIDC issuer (device flow) instead of a fixed token",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["oidc"]:
            config = self._oidc_config(options["server"])
        else:
            user: str | None = options["user"]
            if not user:
                raise CommandError("--user is required (or --oidc)")
            groups: list[str] = options["group"]
            if user == "admin" and not groups:
                groups = list(bootstrap.ADMIN_GROUPS)
            token = tokens.create(user, groups, description="manage.py kubeconfig")
            config = bootstrap.kubeconfig(user, token, options["server"])
        self.stdout.write(yaml.safe_dump(config, sort_keys=False), ending="")

    def _oidc_config(self, server: str | None) -> dict[str, Any]:
        from clusterapi import pki
        from clusterapi.identity import config as identity_config

        ca_file = str(pki.ensure(bootstrap.data_dir()).ca_cert)
        config = bootstrap.kubeconfig(OIDC_USER, "", server)
        config["users"] = [
            {"name": OIDC_USER, "user": oidc_user(identity_config.get().issuer, ca_file)}
        ]
        return config
