"""``manage.py nodeagent``: a node agent (Berth's kubelet), or K simulated nodes.

``--server URL --token T [--name N] [--runtime process|simulated] [--nodes K] [--ca-file F]``.
The token is a bootstrap token (``manage.py token create``), exchanged for node credentials
at start, or any token usable as is. With ``--runtime simulated --nodes K`` the nodes are
``<name>-0`` … ``<name>-<K-1>``. The CA defaults to the instance's own (``<data dir>/pki``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusterapi.nodeagent.agent import DEFAULT_CAPACITY, AgentOptions, NodeAgent
from clusterapi.nodeagent.runtimes.simulated import SimulatedOptions, SimulatedRuntime


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """``cpu=8,memory=32Gi`` → {"cpu": "8", "memory": "32Gi"}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            raise CommandError(f"invalid {what} {part!r}: use key=value[,key=value]")
        out[key] = value
    return out


class Command(BaseCommand):
    help = "Run a node agent: register node(s) with the API server and run the pods bound to them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--server", required=True, help="API server URL (https://...)")
        parser.add_argument("--token", required=True, help="bootstrap token <id>.<secret>")
        parser.add_argument("--name", default=socket.gethostname().lower(), help="node name")
        parser.add_argument("--runtime", choices=("process", "simulated"), default="process")
        parser.add_argument("--nodes", type=int, default=1, help="simulated nodes (K)")
        parser.add_argument("--ca-file", default=None, help="CA bundle of the API server")
        parser.add_argument(
            "--insecure-skip-tls-verify", action="store_true", help="do not verify TLS (tests)"
        )
        parser.add_argument(
            "--capacity",
            default="",
            help="simulated capacity, e.g. cpu=8,memory=32Gi,pods=110,ephemeral-storage=100Gi",
        )
        parser.add_argument("--node-labels", default="", help="extra labels k=v[,k=v]")
        parser.add_argument("--pod-start-delay", type=float, default=0.5, help="seconds")
        parser.add_argument(
            "--pod-failure-rate", type=float, default=0.0, help="0..1: container starts failing"
        )
        parser.add_argument(
            "--pod-duration",
            type=float,
            default=None,
            help="seconds a Never/OnFailure pod runs before it succeeds",
        )
        parser.add_argument("--lease-renew-interval", type=float, default=10.0, help="seconds")
        parser.add_argument("--concurrency", type=int, default=64, help="parallel API requests")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["runtime"] == "process":
            raise CommandError(
                "the process runtime is not yet implemented (issue 6); use --runtime simulated"
            )
        count = int(options["nodes"])
        if count < 1:
            raise CommandError("--nodes must be at least 1")
        name = str(options["name"])
        # Simulated nodes are always numbered (<name>-0 … <name>-<K-1>).
        names = [f"{name}-{i}" for i in range(count)]
        ca_file = options["ca_file"]
        if ca_file is None:
            local = Path(settings.DATA_DIR) / "pki" / "ca.crt"
            ca_file = str(local) if local.exists() else None
        capacity = dict(DEFAULT_CAPACITY)
        capacity.update(parse_pairs(options["capacity"], "capacity"))
        agent_options = AgentOptions(
            server=options["server"],
            token=options["token"],
            names=names,
            ca_file=ca_file,
            insecure=bool(options["insecure_skip_tls_verify"]),
            capacity=capacity,
            renew_interval=float(options["lease_renew_interval"]),
            concurrency=int(options["concurrency"]),
            node_labels=parse_pairs(options["node_labels"], "label"),
        )
        runtime = SimulatedRuntime(
            SimulatedOptions(
                start_delay=float(options["pod_start_delay"]),
                failure_rate=float(options["pod_failure_rate"]),
                pod_duration=options["pod_duration"],
            )
        )
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        asyncio.run(self._serve(NodeAgent(agent_options, runtime)))

    async def _serve(self, agent: NodeAgent) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.stop)
        await agent.start()
        self.stdout.write(f"node agent ready: {len(agent.nodes)} node(s)")
        self.stdout.flush()
        await agent.wait_stopped()
        await agent.close()
