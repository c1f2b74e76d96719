"""In-cluster API access for pods: service-account tokens, kept fresh, where clients look.

A pod's token volume (``clusterapi.admission.serviceaccount``) projects a service-account
token, the cluster CA and the namespace. Clients configured "in-cluster" (the official
``kubernetes`` Python client's ``load_incluster_config``, kubectl, client-go, kopf) read them
at ``/var/run/secrets/kubernetes.io/serviceaccount`` and reach the API at
``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``.

Tokens
------
``request_token`` asks TokenRequest for the pod's service account with the pod bound
(``boundObjectRef`` Pod name and uid: the token dies with the pod), with the node's
credential, which the Node authorizer allows only for pods bound to this node.
``keep_fresh`` (a task of each running pod) requests it again as the kubelet does: once 80 %
of its lifetime has passed, or after 24 hours, whichever is first; a failed request is
retried every ``RETRY_SECONDS`` while the old token stays. Each file is replaced atomically
(written beside it, then renamed), so a reader sees the old token or the new one, never half.

Where clients find it — decided at run time, once per runtime (``decide``)
---------------------------------------------------------------------------
* **A mount namespace of its own** (``Access.namespace``), when the agent runs as root and the
  kernel lets it (``unshare --mount`` and a bind mount are tried once; containers often
  forbid it): each container process starts through ``unshare --mount --propagation private``
  and ``mount -o bind,ro`` of the volume mounted at the standard path onto that path (an
  empty directory for a container without one, so it never sees a token of the host's), then
  ``exec``s its program with the same pid. Unmodified in-cluster clients just work. ``exec``
  (``kubectl exec``, exec probes) enters the running process's namespace (``nsenter``), so an
  exec'd client sees the same. The mount point directory is created on the host once (empty;
  the bind is private to the container). ``BERTH_POD_MOUNT_NAMESPACE=off`` turns this off.
* **Otherwise, through the client's environment** (``Access.namespace`` false): each container
  with a mount at the standard path gets ``KUBECONFIG`` naming a kubeconfig in the pod's
  directory (``<pod dir>/kube/<container>.kubeconfig``): server
  ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, the projected ``ca.crt``,
  the pod's namespace, and the token through an exec credential plugin (``cat`` of an
  ``ExecCredential`` the agent rewrites with each token, carrying its expiry). Not
  ``tokenFile``: kubectl (client-go) re-reads a ``tokenFile``, but the Python client's
  kubeconfig loader reads it once at load and never again, so a long-running Python client
  would keep an expired token; both re-run an exec plugin once its credential expires (the
  Python client five minutes before), by which time the agent has replaced it. A mount whose
  token the agent does not issue (a Secret's, say) gets ``tokenFile``. ``kubectl`` and
  ``kubernetes.config.load_config()`` work from inside the pod; ``load_incluster_config()``
  cannot (it reads only the fixed path, which the process does not have), nor can anything
  else that insists on that path.

``KUBERNETES_SERVICE_HOST`` is the host of the agent's own ``--server`` URL, which the agent
verifies the server's certificate against, so the certificate is valid for it (an agent
told to skip that verification warns that pods may fail it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_EXPIRATION = 3607
MAX_TOKEN_AGE = 24 * 3600.0
REFRESH_FRACTION = 0.8
RETRY_SECONDS = 10.0
EXEC_API_VERSION = "client.authentication.k8s.io/v1"
MOUNT_NAMESPACE_ENV = "BERTH_POD_MOUNT_NAMESPACE"

# Run in the container's new mount namespace by ``sh``: bind the source onto the standard
# path, then become the container's program (same pid, so signals and accounting hold).
# Arguments: mount binary, source, target, mount options, then the program's argv.
_BIND_SCRIPT = '"$1" -o "$4" "$2" "$3" || exit 128; shift 4; exec "$@"'


class TokenError(Exception):
    """A token could not be requested (the caller turns it into a mount failure)."""


# --- tokens --------------------------------------------------------------------------------


@dataclass
class ProjectedToken:
    """One ``serviceAccountToken`` source of a pod volume, as written on disk."""

    spec: Obj
    token: str
    issued: float  # Unix time of the request
    expires: float  # Unix time the token stops being valid
    file: Path | None = None  # the token file in the volume
    credential: Path | None = None  # the ExecCredential copy (kubeconfig access)
    retry_at: float = 0.0

    @property
    def refresh_at(self) -> float:
        """When to request a new one (``retry_at`` after a failed attempt)."""
        return self.retry_at or refresh_time(self.issued, self.expires)


def refresh_time(issued: float, expires: float) -> float:
    """The kubelet's rule: 80 % of the lifetime, or 24 hours, whichever comes first."""
    lifetime = max(expires - issued, 0.0)
    return issued + min(REFRESH_FRACTION * lifetime, MAX_TOKEN_AGE)


def _parse_time(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _format_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def request_token(api: Any, pod: Obj, spec: Obj) -> ProjectedToken:
    """A TokenRequest for the pod's service account, bound to the pod; ``api`` is the
    runtime's ``spec.Api``. Raises ``TokenError``."""
    meta = pod["metadata"]
    namespace = str(meta.get("namespace") or "default")
    account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    seconds = int(spec.get("expirationSeconds") or DEFAULT_EXPIRATION)
    body: Obj = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
    if spec.get("audience"):
        body["spec"]["audiences"] = [spec["audience"]]
    issued = time.time()
    try:
        answer = await api.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body
        )
    except Exception as exc:
        # Whatever the API callable raises (the agent's ApiError, a transport error) is a
        # failed mount, retried, as the kubelet retries one.
        raise TokenError(f"failed to fetch token: {_message(exc)}") from exc
    status = answer.get("status") or {}
    token = str(status.get("token") or "")
    if not token:
        raise TokenError("failed to fetch token: the TokenRequest returned no token")
    expires = _parse_time(str(status.get("expirationTimestamp") or "")) or issued + seconds
    return ProjectedToken(spec=spec, token=token, issued=issued, expires=expires)


def _message(exc: Exception) -> str:
    """The ``message`` of a Kubernetes ``Status`` in an error's text, else the text."""
    text = str(exc)
    match = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if match is None:
        return text
    with contextlib.suppress(ValueError):
        return str(json.loads(f'"{match.group(1)}"'))
    return text


def write_atomic(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` by a complete new file: a reader sees the old one or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def exec_credential(token: ProjectedToken) -> bytes:
    """The ``ExecCredential`` the kubeconfig's plugin prints: the token and its expiry."""
    return json.dumps(
        {
            "apiVersion": EXEC_API_VERSION,
            "kind": "ExecCredential",
            "spec": {},
            "status": {"token": token.token, "expirationTimestamp": _format_time(token.expires)},
        }
    ).encode()


def store(token: ProjectedToken) -> None:
    """Write the token (and its credential copy, if any) where readers find them."""
    if token.file is not None:
        write_atomic(token.file, token.token.encode())
    if token.credential is not None:
        write_atomic(token.credential, exec_credential(token))


async def refresh(api: Any, pod: Obj, token: ProjectedToken) -> None:
    """Request ``token`` again and replace its files; on failure keep the old one and try
    again in ``RETRY_SECONDS``."""
    try:
        fresh = await request_token(api, pod, token.spec)
    except TokenError as exc:
        token.retry_at = time.time() + RETRY_SECONDS
        logger.warning(
            "pod %s/%s: token refresh failed (%s); retrying in %gs",
            pod["metadata"].get("namespace"),
            pod["metadata"].get("name"),
            exc,
            RETRY_SECONDS,
        )
        return
    token.token, token.issued, token.expires = fresh.token, fresh.issued, fresh.expires
    token.retry_at = 0.0
    try:
        await asyncio.to_thread(store, token)
    except OSError as exc:  # the pod's directory going away as it stops, a full disk
        token.retry_at = time.time() + RETRY_SECONDS
        logger.warning("token refresh: cannot write %s: %s", token.file, exc)


async def keep_fresh(
    api: Any,
    pod: Obj,
    tokens: list[ProjectedToken],
    sleep: Callable[[float], Awaitable[None]],
    stopping: Callable[[], bool],
) -> None:
    """Refresh each token when due until ``stopping()``; ``sleep(seconds)`` returns early
    when the pod stops."""
    while tokens and not stopping():
        due = min(t.refresh_at for t in tokens)
        delay = due - time.time()
        if delay > 0:
            await sleep(delay)
            continue
        for token in tokens:
            if token.refresh_at <= time.time() and not stopping():
                await refresh(api, pod, token)


# --- where clients find it -----------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """How this runtime's pods reach their tokens (see the module docstring)."""

    namespace: bool
    reason: str
    unshare: str = ""
    mount: str = ""
    sh: str = ""
    nsenter: str = ""  # for exec and exec probes; without it they run outside

    def wrap(self, argv: list[str], source: Path, read_only: bool) -> list[str]:
        """``argv`` started in a mount namespace of its own with ``source`` at the
        standard path."""
        options = "bind,ro" if read_only else "bind"
        return [
            self.unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            self.sh,
            "-c",
            _BIND_SCRIPT,
            "berth-mount",
            self.mount,
            str(source),
            MOUNT_PATH,
            options,
            *argv,
        ]

    def enter(self, argv: list[str], pid: int, cwd: Path) -> list[str]:
        """``argv`` run in the mount namespace of the container process ``pid`` (exec), in
        ``cwd``; unchanged where there are no such namespaces."""
        if not self.namespace or not self.nsenter:
            return argv
        return [self.nsenter, f"--target={pid}", "--mount", f"--wd={cwd}", "--", *argv]


def setting() -> str:
    """``BERTH_POD_MOUNT_NAMESPACE``: ``auto`` (default) or ``off``."""
    return (os.environ.get(MOUNT_NAMESPACE_ENV) or "auto").strip().lower()


async def decide(scratch: Path, wanted: str = "auto") -> Access:
    """Try a private mount namespace with a bind mount at the standard path; fall back to
    kubeconfig access, saying why."""
    if wanted in ("off", "0", "false", "no"):
        return Access(False, f"{MOUNT_NAMESPACE_ENV}={wanted}")
    if os.geteuid() != 0:
        return Access(False, "the agent does not run as root")
    tools = {name: shutil.which(name) for name in ("unshare", "mount", "sh")}
    missing = sorted(name for name, path in tools.items() if path is None)
    if missing:
        return Access(False, f"{', '.join(missing)} not found")
    access = Access(True, "", str(tools["unshare"]), str(tools["mount"]), str(tools["sh"]))
    try:
        Path(MOUNT_PATH).mkdir(parents=True, exist_ok=True)
        probe = scratch / "probe"
        probe.mkdir(parents=True, exist_ok=True)
        (probe / "token").write_text("probe")
    except OSError as exc:
        return Access(False, f"cannot prepare {MOUNT_PATH}: {exc}")
    try:
        process = await asyncio.create_subprocess_exec(
            *access.wrap(["cat", f"{MOUNT_PATH}/token"], probe, True),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 10.0)
    except (OSError, TimeoutError) as exc:
        return Access(False, f"unshare failed: {exc}")
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if process.returncode != 0 or out != b"probe":
        detail = err.decode(errors="replace").strip() or f"exit code {process.returncode}"
        return Access(False, f"unshare --mount refused: {detail}")
    return Access(
        True,
        "mount namespaces work",
        access.unshare,
        access.mount,
        access.sh,
        shutil.which("nsenter") or "",
    )


def check_executable(program: str, env: dict[str, str], cwd: Path) -> None:
    """Raise the ``OSError`` an exec of ``program`` would: the wrapper execs it only later,
    and a missing program must still be a ``StartError``, not an exit code of ``sh``."""
    if "/" in program:
        path: str | None = str(cwd / program)
    else:
        path = shutil.which(program, path=env.get("PATH", os.defpath))
    if path is None or not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)


def server_url(host: str, port: str) -> str:
    """``https://host:port``, an IPv6 address in brackets, as in-cluster clients build it."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"https://{host}:{port}"


def kubeconfig(
    server: str, namespace: str, source: Path, token: ProjectedToken | None
) -> dict[str, Any]:
    """A kubeconfig for a container whose standard-path mount is ``source``: exec plugin
    for a token the agent refreshes, ``tokenFile`` for any other."""
    cat = shutil.which("cat") or "cat"
    user: Obj
    if token is not None and token.credential is not None:
        user = {
            "exec": {
                "apiVersion": EXEC_API_VERSION,
                "command": cat,
                "args": [str(token.credential)],
                "interactiveMode": "Never",
                "provideClusterInfo": False,
            }
        }
    else:
        user = {"tokenFile": str(source / "token")}
    cluster: Obj = {"server": server}
    if (source / "ca.crt").exists():
        cluster["certificate-authority"] = str(source / "ca.crt")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": cluster}],
        "users": [{"name": "serviceaccount", "user": user}],
        "contexts": [
            {
                "name": "in-cluster",
                "context": {
                    "cluster": "in-cluster",
                    "user": "serviceaccount",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "in-cluster",
        "preferences": {},
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    write_atomic(path, yaml.safe_dump(config, sort_keys=False).encode())
