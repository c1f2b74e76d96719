"""First-start and every-start set-up of an instance: what must exist before clients come.

Idempotent: ``manage.py up`` runs it on every start. It creates the default namespaces and
the bootstrap admin credential (a kubeconfig in the data directory, shown once in the
terminal), and records where the server listens so ``manage.py kubeconfig`` can point at it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from clusterapi import pki, store
from clusterapi.authn import tokens
from clusterapi.resources import by_kind
from clusterapi.store.errors import ApiError

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ADMIN_GROUPS = ("system:masters",)


def data_dir() -> Path:
    return Path(settings.DATA_DIR)


def server_url() -> str:
    """Where this instance's API listens (written by ``up``), for kubeconfigs."""
    info = data_dir() / "server.json"
    if info.exists():
        return str(json.loads(info.read_text())["url"])
    return "https://127.0.0.1:6443"


def record_server(url: str) -> None:
    (data_dir() / "server.json").write_text(json.dumps({"url": url}))


def ensure_namespaces() -> None:
    kind = by_kind("v1", "Namespace")
    assert kind is not None
    for name in DEFAULT_NAMESPACES:
        try:
            store.create(kind, {"metadata": {"name": name}}, field_manager="berth-bootstrap")
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise


def kubeconfig(user: str, token: str, server: str | None = None) -> dict[str, Any]:
    """A kubeconfig for ``user`` with a bearer token, trusting this instance's CA."""
    certs = pki.ensure(data_dir())
    ca = base64.b64encode(certs.ca_cert.read_bytes()).decode()
    context = f"{user}@berth"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "berth",
                "cluster": {"server": server or server_url(), "certificate-authority-data": ca},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "berth", "user": user}}],
        "current-context": context,
        "preferences": {},
    }


def admin_kubeconfig_path() -> Path:
    return data_dir() / "admin.kubeconfig"


def ensure_admin(server: str) -> Path:
    """The bootstrap admin kubeconfig, created with a fresh token on first start."""
    path = admin_kubeconfig_path()
    if path.exists():
        config = yaml.safe_load(path.read_text())
        config["clusters"][0]["cluster"]["server"] = server
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path
    token = tokens.create("admin", ADMIN_GROUPS, description="bootstrap admin")
    path.write_text(yaml.safe_dump(kubeconfig("admin", token, server), sort_keys=False))
    path.chmod(0o600)
    return path


def run(server: str) -> Path:
    from clusterapi.rbac import bootstrap as rbac_bootstrap

    ensure_namespaces()
    # Default roles and bindings, created or brought up to date on every start.
    rbac_bootstrap.reconcile()
    # The built-in system-cluster-critical and system-node-critical PriorityClasses.
    from clusterapi.resources.kinds import priorityclass

    priorityclass.ensure_system_classes()
    record_server(server)
    return ensure_admin(server)
