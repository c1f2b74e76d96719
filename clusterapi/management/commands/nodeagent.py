"""``manage.py nodeagent``: a node agent (Berth's kubelet), or K simulated nodes.

``--server URL --token T [--name N] [--runtime process|simulated] [--nodes K] [--ca-file F]``.
The token is a bootstrap token (``manage.py token create``), exchanged for node credentials
at start, or any token usable as is. With ``--runtime simulated --nodes K`` the nodes are
``<name>-0`` … ``<name>-<K-1>``. The CA defaults to the instance's own (``<data dir>/pki``).

``--runtime process`` serves one node, ``<name>``, running its pods as local processes
(``clusterapi.nodeagent.runtimes.process``) under ``--data-dir`` (default
``<data dir>/nodeagent/<name>``), with its capacity measured from the host and its log
endpoint on ``--port`` (10250; 0 picks a free one). Its address is ``--address``, by default
``127.0.0.1`` when the API server is on this machine's loopback, else the local address
that reaches the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import signal
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def host_capacity(data_dir: Path) -> dict[str, str]:
    """This machine's capacity: cpus, memory, the data dir's disk, 110 pods."""
    import psutil

    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{psutil.virtual_memory().total // 1024}Ki",
        "pods": "110",
        "ephemeral-storage": f"{shutil.disk_usage(data_dir).total // 1024}Ki",
    }


def node_address(server: str, address: str | None) -> tuple[str, str]:
    """(the node's address, the log endpoint's bind address) for an agent of ``server``."""
    if address:
        return address, address
    host = urlsplit(server).hostname or "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        loopback = False
    if loopback:
        return "127.0.0.1", "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        # A UDP "connect" sends nothing: it only picks the route (and so the local address).
        probe.connect((host, urlsplit(server).port or 443))
        return str(probe.getsockname()[0]), "0.0.0.0"  # noqa: S104 - reachable by the server


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
        parser.add_argument("--data-dir", default=None, help="process runtime: pods and logs")
        parser.add_argument("--port", type=int, default=10250, help="process runtime: log port")
        parser.add_argument("--address", default=None, help="process runtime: node address")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["runtime"] == "process":
            self._run_process(options)
            return
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

    def _agent_options(self, options: dict[str, Any], names: list[str]) -> AgentOptions:
        ca_file = options["ca_file"]
        if ca_file is None:
            local = Path(settings.DATA_DIR) / "pki" / "ca.crt"
            ca_file = str(local) if local.exists() else None
        return AgentOptions(
            server=options["server"],
            token=options["token"],
            names=names,
            ca_file=ca_file,
            insecure=bool(options["insecure_skip_tls_verify"]),
            renew_interval=float(options["lease_renew_interval"]),
            concurrency=int(options["concurrency"]),
            node_labels=parse_pairs(options["node_labels"], "label"),
        )

    def _run_process(self, options: dict[str, Any]) -> None:
        from clusterapi.nodeagent.runtimes.process import ProcessOptions, ProcessRuntime

        name = str(options["name"])
        data_dir = Path(options["data_dir"] or Path(settings.DATA_DIR) / "nodeagent" / name)
        data_dir.mkdir(parents=True, exist_ok=True)
        host_ip, bind_host = node_address(str(options["server"]), options["address"])
        agent_options = self._agent_options(options, [name])
        agent_options.capacity = host_capacity(data_dir)
        agent_options.capacity.update(parse_pairs(options["capacity"], "capacity"))
        runtime = ProcessRuntime(
            ProcessOptions(
                data_dir=data_dir, host_ip=host_ip, bind_host=bind_host, port=int(options["port"])
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
