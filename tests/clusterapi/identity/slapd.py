"""A private OpenLDAP ``slapd`` for the LDAP connector tests (never the machine's own service).

``Slapd`` writes a ``slapd.conf`` and an MDB database directory into a temporary directory,
starts ``/usr/sbin/slapd`` in the foreground on a free loopback port (``ldap://127.0.0.1:PORT``)
and loads a small directory with ``ldapadd``::

    dc=example,dc=org
      ou=people   uid=jane (Jane Doe), uid=john (John Roe): inetOrgPerson + posixAccount
      ou=groups   cn=berth-viewers {jane}, cn=developers {jane, john}: groupOfNames

Passwords are stored as ``{SSHA}`` hashes. The ``slapd`` fixture gives one server to a test
module (``running`` does the same outside pytest's fixtures); ``ldap_connector_config`` is
the dex-style connector entry that points at it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3
import pytest

from tests.live import free_port

SLAPD = Path("/usr/sbin/slapd")
LDAPADD = Path("/usr/bin/ldapadd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
BASE_DN = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "slapd-admin-pw"
PEOPLE = f"ou=people,{BASE_DN}"
GROUPS = f"ou=groups,{BASE_DN}"
# username -> (uidNumber, full name, password)
USERS = {
    "jane": (10001, "Jane Doe", "jane-pass-1"),
    "john": (10002, "John Roe", "john-pass-1"),
}
MEMBERS = {"berth-viewers": ["jane"], "developers": ["jane", "john"]}


def ssha(password: str) -> str:
    """An OpenLDAP ``{SSHA}`` password hash (salted SHA-1, what ``slappasswd`` makes)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - LDAP's format
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def user_dn(username: str) -> str:
    return f"uid={username},{PEOPLE}"


def _config(root: Path, port: int) -> str:
    schemas = "\n".join(
        f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "nis", "inetorgperson")
    )
    return f"""{schemas}
pidfile {root / "slapd.pid"}
argsfile {root / "slapd.args"}
modulepath {MODULE_DIR}
moduleload back_mdb
database mdb
maxsize 67108864
suffix "{BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {root / "db"}
index objectClass eq
index uid,member eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""


def _ldif() -> str:
    entries = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
        "o: Example\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    for username, (number, name, password) in USERS.items():
        given, family = name.split()
        entries.append(
            f"dn: {user_dn(username)}\n"
            "objectClass: inetOrgPerson\nobjectClass: posixAccount\n"
            f"uid: {username}\ncn: {name}\ngivenName: {given}\nsn: {family}\n"
            f"mail: {username}@example.org\nuidNumber: {number}\ngidNumber: {number}\n"
            f"homeDirectory: /home/{username}\nuserPassword: {ssha(password)}\n"
        )
    for group, members in MEMBERS.items():
        lines = "".join(f"member: {user_dn(m)}\n" for m in members)
        entries.append(f"dn: cn={group},{GROUPS}\nobjectClass: groupOfNames\ncn: {group}\n{lines}")
    return "\n".join(entries)


@dataclass
class Slapd:
    """A running private slapd and the means to change its directory."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> Slapd:
        for tool in (SLAPD, LDAPADD):
            if not tool.exists():
                raise RuntimeError(f"{tool} is missing (tests/run installs slapd and ldap-utils)")
        (self.root / "db").mkdir(parents=True, exist_ok=True)
        conf = self.root / "slapd.conf"
        conf.write_text(_config(self.root, self.port))
        log = open(self.root / "slapd.log", "wb")  # noqa: SIM115 - lives as long as slapd
        # -d keeps slapd in the foreground (no fork), so the test owns the process.
        self.process = subprocess.Popen(
            [str(SLAPD), "-f", str(conf), "-h", f"{self.url}/", "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        data = self.root / "data.ldif"
        data.write_text(_ldif())
        subprocess.run(
            [str(LDAPADD), "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, "-f", data],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return self

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited:\n{self.log()}")
            try:
                with self.admin():
                    return
            except ldap3.core.exceptions.LDAPException:
                time.sleep(0.1)
        raise RuntimeError(f"slapd not ready after {timeout}s:\n{self.log()}")

    def admin(self) -> ldap3.Connection:
        """A connection bound as the directory's root DN."""
        server = ldap3.Server("127.0.0.1", port=self.port, connect_timeout=2)
        return ldap3.Connection(server, ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)

    def delete_user(self, username: str) -> None:
        with self.admin() as connection:
            assert connection.delete(user_dn(username)), connection.result

    def add_user(self, username: str, number: int, name: str, password: str) -> None:
        given, family = name.split()
        attributes = {
            "uid": username,
            "cn": name,
            "givenName": given,
            "sn": family,
            "mail": f"{username}@example.org",
            "uidNumber": number,
            "gidNumber": number,
            "homeDirectory": f"/home/{username}",
            "userPassword": ssha(password),
        }
        with self.admin() as connection:
            ok = connection.add(user_dn(username), ["inetOrgPerson", "posixAccount"], attributes)
            assert ok, connection.result

    def log(self) -> str:
        path = self.root / "slapd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ldap_connector_config(server: Slapd, connector_id: str = "ldap") -> dict[str, Any]:
    """The ``identity.connectors[]`` entry (dex's field names) for ``server``."""
    return {
        "type": "ldap",
        "id": connector_id,
        "name": "Corporate LDAP",
        "config": {
            "host": f"127.0.0.1:{server.port}",
            "insecureNoSSL": True,
            "bindDN": ADMIN_DN,
            "bindPW": ADMIN_PASSWORD,
            "usernamePrompt": "Username",
            "userSearch": {
                "baseDN": PEOPLE,
                "filter": "(objectClass=inetOrgPerson)",
                "username": "uid",
                "idAttr": "uidNumber",
                "emailAttr": "mail",
                "nameAttr": "cn",
            },
            "groupSearch": {
                "baseDN": GROUPS,
                "filter": "(objectClass=groupOfNames)",
                "userMatchers": [{"userAttr": "DN", "groupAttr": "member"}],
                "nameAttr": "cn",
            },
        },
    }


@contextmanager
def running() -> Iterator[Slapd]:
    """A private slapd with the directory above, stopped and removed afterwards."""
    # A short path: slapd's own paths (pid, args, db) stay readable in its log.
    root = Path(tempfile.mkdtemp(prefix="berth-slapd-"))
    server = Slapd(root)
    try:
        yield server.start()
    finally:
        server.stop()
        if os.environ.get("BERTH_KEEP_SLAPD") != "1":
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    """A private slapd for one test module (see ``running``)."""
    with running() as server:
        yield server
