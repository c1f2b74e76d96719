"""``manage.py up [--port P] [--data-dir DIR]``: the whole platform on one machine.

Migrates the database, bootstraps the instance (namespaces, admin credential, certificates)
and serves the API, dashboard and admin site over HTTPS with uvicorn until Ctrl-C. The
Celery worker and beat (the control loops) and one node agent for this machine run as
supervised child processes and stop with the server.

The local node agent (``BERTH_LOCAL_AGENT``: ``process``, the default, runs pods as local
processes; ``simulated`` fakes one node; ``off`` starts none) joins like any other agent:
``up`` mints a short-lived bootstrap token for each start of it (the agent exchanges it for
its node credential at once), so no long-lived joining secret is left in the cluster.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Start Berth (API server and dashboard) with embedded defaults."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=6443)
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument(
            "--data-dir",
            default=None,
            help="state directory (default: $BERTH_DATA_DIR or ./var); must be given before "
            "settings load, so prefer BERTH_DATA_DIR when calling from code",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        import uvicorn

        from clusterapi import bootstrap, pki
        from clusterapi.core import gctune

        call_command("migrate", interactive=False, verbosity=0)
        host: str = options["host"]
        port: int = options["port"]
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        url = f"https://{shown_host}:{port}"
        certs = pki.ensure(settings.DATA_DIR, (host,))
        admin = bootstrap.run(url)
        self.stdout.write(
            f"Berth is starting at {url}\n"
            f"  data directory: {settings.DATA_DIR}\n"
            f"  kubectl:        export KUBECONFIG={admin}\n"
            f"                  kubectl get namespaces\n"
            f"  dashboard:      {url}/ui/\n"
            f"  more users:     python manage.py kubeconfig --user NAME [--group G]\n"
            "Press Ctrl-C to stop.\n"
        )
        self.stdout.flush()
        _start_compactor()
        # Everything the server needs is loaded; the interpreter's thresholds are kept, for
        # short pauses (clusterapi.core.gctune).
        gctune.tune(young=0)
        config = uvicorn.Config(
            "clusterapi.asgi:application",
            host=host,
            port=port,
            ssl_certfile=str(certs.server_cert),
            ssl_keyfile=str(certs.server_key),
            log_level=os.environ.get("BERTH_LOG_LEVEL", "warning").lower(),
            lifespan="off",
            timeout_graceful_shutdown=2,
            # Clients keep connections open between requests (node agents' pools, kubectl,
            # the Python client). A server that closes an idle connection as the client
            # reuses it makes that request fail ("server disconnected"); uvicorn's default
            # of 5 s equals httpx's own keep-alive expiry, so the two raced. Well above any
            # client's idle expiry, the client always closes first.
            timeout_keep_alive=75,
        )
        loops = Loops(url, certs.ca_cert)
        if loops.agent_runtime:
            self.stdout.write(
                f"  node agent:     {loops.agent_runtime} runtime (BERTH_LOCAL_AGENT)\n"
            )
            self.stdout.flush()
        try:
            uvicorn.Server(config).run()
        finally:
            loops.stop()


def _die_with_parent() -> None:
    """In a child: ask Linux to SIGTERM us when ``up`` dies, however it dies (no orphans)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the finally block in handle() still stops the children


class Loops:
    """The Celery worker and beat (the control loops) and the local node agent, as supervised
    child processes.

    A child that exits while ``up`` runs is started again (after a short pause, so a child
    that cannot start does not spin); ``stop`` ends them for good.
    """

    RESTART_PAUSE = 2.0

    def __init__(self, server_url: str, ca_file: Path) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "clusterapi"]
        level = os.environ.get("BERTH_LOG_LEVEL", "warning").lower()
        schedule = Path(settings.DATA_DIR) / "celerybeat-schedule"
        self.server_url, self.ca_file = server_url, ca_file
        runtime = os.environ.get("BERTH_LOCAL_AGENT", "process").lower()
        self.agent_runtime = "" if runtime in ("", "0", "off", "none") else runtime
        self.commands: dict[str, list[str]] = {
            "worker": [
                *celery,
                "worker",
                "--loglevel",
                level,
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"berth-{os.getpid()}@%h",
            ],
            "beat": [*celery, "beat", "--loglevel", level, "--schedule", str(schedule)],
        }
        self.schedule = schedule
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()
        for name in self.commands:
            self._spawn(name)
        if self.agent_runtime:
            # Joining needs the API: the agent's first start waits until it answers.
            threading.Thread(target=self._start_agent, name="berth-agent", daemon=True).start()
        threading.Thread(target=self._watch, name="berth-loops", daemon=True).start()

    def _start_agent(self) -> None:
        parsed = urlsplit(self.server_url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                socket.create_connection((parsed.hostname, parsed.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        if not self.stopping.is_set():
            self._spawn("agent")

    def _agent_command(self) -> list[str]:
        """The local agent's command line, with a bootstrap token minted for this start."""
        from django.db import close_old_connections

        from clusterapi.authn import bootstrap as bootstrap_tokens

        try:
            token = bootstrap_tokens.create(
                ttl=timedelta(minutes=10), description="local node agent (manage.py up)"
            )
        finally:
            close_old_connections()  # this may run on the supervising thread
        command = [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "nodeagent",
            "--server",
            self.server_url,
            "--token",
            token,
            "--runtime",
            self.agent_runtime,
            "--ca-file",
            str(self.ca_file),
        ]
        if self.agent_runtime == "process":
            command += ["--port", "0"]
        return command

    def _spawn(self, name: str) -> None:
        if name == "beat":
            # Beat's schedule file only remembers last run times; a file left broken by a
            # crash would stop beat from starting, so it is started afresh each time.
            for stale in self.schedule.parent.glob(self.schedule.name + "*"):
                stale.unlink(missing_ok=True)
        self.processes[name] = subprocess.Popen(
            self._agent_command() if name == "agent" else self.commands[name],
            preexec_fn=_die_with_parent,  # only prctl: safe between fork and exec
        )

    def _watch(self) -> None:
        while not self.stopping.wait(self.RESTART_PAUSE):
            for name, process in list(self.processes.items()):
                if process.poll() is not None and not self.stopping.is_set():
                    logger.warning("%s exited with %s; starting it again", name, process.returncode)
                    self._spawn(name)

    def stop(self) -> None:
        self.stopping.set()
        processes = list(self.processes.values())
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start_compactor() -> None:
    """Trim the change log every BERTH_COMPACTION_INTERVAL seconds (default a minute),
    keeping BERTH_CHANGELOG_RETENTION revisions; an interval of 0 turns this off."""
    from django.db import close_old_connections

    from clusterapi import store

    interval = settings.BERTH_COMPACTION_INTERVAL
    if interval <= 0:
        return

    def loop() -> None:
        while True:
            time.sleep(interval)
            try:
                store.compact(settings.BERTH_CHANGELOG_RETENTION)
            except Exception:
                # A failed round (say, the database briefly unreachable) must not end the
                # thread: the next round catches up.
                logger.exception("change-log compaction failed")
            finally:
                close_old_connections()

    threading.Thread(target=loop, name="berth-compactor", daemon=True).start()
