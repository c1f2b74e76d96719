"""``manage.py token create|list|delete``: bootstrap tokens for joining node agents."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusterapi.authn import bootstrap

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta | None:
    """``24h``, ``90m``, ``1h30m``, ``0`` (never expires)."""
    if text in ("0", "0s"):
        return None
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise CommandError(f"invalid duration {text!r}: use forms like 24h, 90m or 1h30m")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


class Command(BaseCommand):
    help = "Create, list and delete bootstrap tokens (<id>.<secret>) for joining node agents."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token and print it")
        create.add_argument("--ttl", default="24h", help="lifetime, e.g. 24h, 90m; 0 = forever")
        create.add_argument("--description", default="")
        sub.add_parser("list", help="list tokens (without their secrets)")
        delete = sub.add_parser("delete", help="revoke a token")
        delete.add_argument("token_id", help="the token's id (the part before the dot)")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            token = bootstrap.create(parse_duration(options["ttl"]), options["description"])
            self.stdout.write(token)
        elif action == "list":
            self.stdout.write(f"{'TOKEN ID':<10}{'EXPIRES':<22}{'STATUS':<10}DESCRIPTION")
            for item in bootstrap.list_tokens():
                expires = (
                    item.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
                    if item.expiration
                    else "<forever>"
                )
                status = "expired" if item.expired else "valid"
                self.stdout.write(f"{item.id:<10}{expires:<22}{status:<10}{item.description}")
        elif action == "delete":
            token_id = options["token_id"].split(".")[0]
            if not bootstrap.delete(token_id):
                raise CommandError(f'bootstrap token "{token_id}" not found')
            self.stdout.write(f'bootstrap token "{token_id}" deleted')
