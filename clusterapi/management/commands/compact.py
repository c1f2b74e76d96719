"""``manage.py compact [--retain N]``: trim the change log now, as ``etcdctl compact`` does.

A running server compacts on its own once a minute, keeping ``BERTH_CHANGELOG_RETENTION``
revisions (the analogue of kube-apiserver's periodic etcd compaction). This command does the
same on demand: to reclaim space after a burst of writes, or to shorten the history a long-lived
client may resume from. Watches and list continuations from before the new floor then get
410 Gone (reason Expired) and must relist, exactly as after an etcd compaction. It works on the
instance's database (``BERTH_DATA_DIR`` / ``DATABASE_URL``), so it can run beside ``up``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Drop change-log revisions older than the newest N (default BERTH_CHANGELOG_RETENTION)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--retain",
            type=int,
            default=None,
            help="how many of the newest revisions to keep (default: BERTH_CHANGELOG_RETENTION)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from clusterapi import store

        retain = options["retain"]
        if retain is None:
            retain = settings.BERTH_CHANGELOG_RETENTION
        if retain < 1:
            raise CommandError("--retain must be at least 1")
        floor = store.compact(retain)
        # etcdctl's wording: revisions below this one are gone; this one is still readable.
        self.stdout.write(f"compacted revision {floor}")
