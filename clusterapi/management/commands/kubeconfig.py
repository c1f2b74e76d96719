"""``manage.py kubeconfig --user NAME [--group G ...] [--server URL]``: print a kubeconfig."""

from __future__ import annotations

from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandParser

from clusterapi import bootstrap
from clusterapi.authn import tokens


class Command(BaseCommand):
    help = "Print a kubeconfig with a new bearer token for the given identity."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="user name the token authenticates as")
        parser.add_argument(
            "--group", action="append", default=[], help="group of the user (repeatable)"
        )
        parser.add_argument(
            "--server", default=None, help="API server URL (default: this instance's)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user: str = options["user"]
        groups: list[str] = options["group"]
        if user == "admin" and not groups:
            groups = list(bootstrap.ADMIN_GROUPS)
        token = tokens.create(user, groups, description="manage.py kubeconfig")
        config = bootstrap.kubeconfig(user, token, options["server"])
        self.stdout.write(yaml.safe_dump(config, sort_keys=False), ending="")
