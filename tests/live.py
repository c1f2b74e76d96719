"""A live Berth server for end-to-end tests: ``manage.py up`` in a subprocess.

Each server gets its own data directory and a free loopback port; with PostgreSQL
(``DATABASE_URL`` set to a postgres URL) it also gets a database of its own, created on the
same server and dropped afterwards, so servers never share state.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = Path(sys.executable).parent / "kubectl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_database(base_url: str) -> tuple[str, str]:
    """Create a fresh database beside the one ``base_url`` names; returns (url, name)."""
    import psycopg

    name = "berth_live_" + secrets.token_hex(4)
    prefix, _, _db = base_url.rpartition("/")
    with psycopg.connect(prefix + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{prefix}/{name}", name


def _drop_postgres_database(base_url: str, name: str) -> None:
    import psycopg

    prefix, _, _db = base_url.rpartition("/")
    with psycopg.connect(prefix + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class LiveServer:
    """A running ``manage.py up`` and the means to talk to it."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    _pg_database: str = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    def start(self) -> LiveServer:
        env = dict(os.environ)
        env["BERTH_DATA_DIR"] = str(self.data_dir)
        # The unit-test process turns the loops off; a live server runs them.
        env["BERTH_CONTROLLERS"] = "1"
        # Tests bring the nodes they need; a test of up's own local agent turns it back on.
        env["BERTH_LOCAL_AGENT"] = "off"
        # A live server writes its audit log and Events in the default mode (batch), as a
        # user's does, unless the test says otherwise.
        env.pop("BERTH_AUDIT_MODE", None)
        env.pop("BERTH_EVENTS_MODE", None)
        base = os.environ.get("DATABASE_URL", "")
        if base.startswith("postgres"):
            env["DATABASE_URL"], self._pg_database = _postgres_database(base)
        else:
            env.pop("DATABASE_URL", None)
        env.update(self.env)
        self.env = env
        log = open(self.data_dir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "up", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        context = ssl.create_default_context(cafile=None)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(  # noqa: S310 - loopback test server
                    f"{self.url}/readyz", context=context, timeout=2
                ) as response:
                    if response.status == 200 and self.admin_kubeconfig.exists():
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._pg_database:
            _drop_postgres_database(os.environ["DATABASE_URL"], self._pg_database)

    def manage(self, *args: str) -> str:
        """Run a management command against this instance; returns its stdout."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def kubeconfig(self, user: str, *groups: str) -> Path:
        """A kubeconfig file for ``user`` (``manage.py kubeconfig``)."""
        args = ["kubeconfig", "--user", user]
        for group in groups:
            args += ["--group", group]
        # KUBECONFIG is a colon-separated list: no colons in the file name.
        path = self.data_dir / f"{user.replace(':', '_')}.kubeconfig"
        path.write_text(self.manage(*args))
        return path

    def token_kubeconfig(self, name: str, token: str) -> Path:
        """A kubeconfig that presents ``token`` (a service-account, OIDC, static or bootstrap
        token) to this server, trusting its CA; written as ``<name>.kubeconfig``."""
        config = yaml.safe_load(self.admin_kubeconfig.read_text())
        cluster = config["clusters"][0]["name"]
        config["users"] = [{"name": name, "user": {"token": token}}]
        config["contexts"] = [{"name": name, "context": {"cluster": cluster, "user": name}}]
        config["current-context"] = name
        path = self.data_dir / f"{name.replace(':', '_')}.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def admin_token(self) -> str:
        config = yaml.safe_load(self.admin_kubeconfig.read_text())
        return str(config["users"][0]["user"]["token"])


@dataclass
class Kubectl:
    """Runs the pinned kubectl against a live server with a private cache directory."""

    kubeconfig: Path
    cache_dir: Path

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **(env or {})}
        result = subprocess.run(
            [str(KUBECTL), "--cache-dir", str(self.cache_dir), *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def __call__(self, *args: str, **kwargs: object) -> str:
        return self.run(*args, **kwargs).stdout  # type: ignore[arg-type]


# --- a private Redis, simulated node agents, the processes of a live server -------------------

import redis  # noqa: E402 - this section is appended to a shared module

REDIS_SERVER = Path("/usr/bin/redis-server")


@dataclass
class RedisServer:
    """A private ``redis-server`` on a free loopback port (never the machine's own at 6379).

    Without ``persistent`` nothing outlives the process (``--save '' --appendonly no``), so a
    restart starts empty, as a crashed cache-only Redis would; with it every write goes to an
    append-only file first and a restart brings the data back.
    """

    data_dir: Path
    persistent: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if not REDIS_SERVER.exists():
            raise RuntimeError(f"{REDIS_SERVER} is missing (tests/run installs redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as Redis
        self.process = subprocess.Popen(
            [
                str(REDIS_SERVER),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                *persistence,
                # Celery's docs: an evicting Redis drops broker keys.
                "--maxmemory-policy",
                "noeviction",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log()}")
            try:
                if self.client().ping():
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server not ready:\n{self.log()}")

    def client(self, db: int = 0) -> redis.Redis:
        """A redis-py client of this server."""
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def log(self) -> str:
        path = self.data_dir / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: what a crash does (no shutdown save)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class AgentProcess:
    """``manage.py nodeagent`` joined to ``server`` with a fresh bootstrap token; its output
    goes to ``agent-<name>.log`` in the server's data directory."""

    server: LiveServer
    name: str = "proc"
    runtime: str = "process"
    # Further nodeagent options (``--port 0``, ``--data-dir``, ...).
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def arguments(self) -> list[str]:
        return ["--name", self.name, "--runtime", self.runtime, *self.options]

    def start(self) -> Self:
        token = self.server.manage("token", "create", "--description", "e2e agent")
        log = open(self.server.data_dir / f"agent-{self.name}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "nodeagent",
                "--server",
                self.server.url,
                "--token",
                token.strip().splitlines()[-1],
                "--ca-file",
                str(self.server.ca_file),
                *self.arguments(),
            ],
            cwd=ROOT,
            env={**self.server.env, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def log(self) -> str:
        path = self.server.data_dir / f"agent-{self.name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash: the agent stops nothing (its containers keep running)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class SimulatedAgent(AgentProcess):
    """``nodes`` simulated nodes in one agent, named ``<name>-0`` … ``<name>-<nodes-1>``."""

    name: str = "sim"
    runtime: str = "simulated"
    nodes: int = 3
    pod_start_delay: float = 0.2

    def arguments(self) -> list[str]:
        return [
            *super().arguments(),
            "--nodes",
            str(self.nodes),
            "--lease-renew-interval",
            "2",
            "--pod-start-delay",
            str(self.pod_start_delay),
        ]


def child_processes(pid: int) -> dict[int, str]:
    """The direct children of ``pid`` and their command lines (Linux ``/proc``)."""
    children: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids = (task / "children").read_text().split()
        except OSError:
            continue
        for child in pids:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            children[int(child)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return children


def celery_worker_pid(server: LiveServer, timeout: float = 30.0) -> int:
    """The pid of the Celery worker ``manage.py up`` runs as its child (waits for one)."""
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, cmdline in child_processes(server.process.pid).items():
            if " celery " in f" {cmdline} " and " worker " in f" {cmdline} ":
                return pid
        time.sleep(0.1)
    raise RuntimeError(f"no Celery worker under {server.process.pid}:\n{server.log()}")


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    """Poll ``check`` until it returns something true (which is returned); fail after
    ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def apply(kubectl: Kubectl, *objects: dict[str, Any]) -> None:
    """``kubectl apply`` of these objects, as one multi-document stream."""
    kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))
