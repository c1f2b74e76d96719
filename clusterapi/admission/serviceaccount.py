"""The ServiceAccount admission plugin: every pod runs as a service account, with its token.

Role
----
Upstream's ``ServiceAccount`` plugin, on pod creation (by anyone: users and the control
plane's own loops alike, since a ReplicaSet's pods need tokens as much as a user's):

1. a pod without ``serviceAccountName`` gets ``default`` (the deprecated ``serviceAccount``
   field mirrors it);
2. unless ``automountServiceAccountToken: false`` — on the pod, which wins, or else on the
   ServiceAccount — the pod gets a projected volume ``kube-api-access-<5 random chars>``
   holding ``token`` (a TokenRequest bound to the pod, ``expirationSeconds: 3607``),
   ``ca.crt`` (from the ``kube-root-ca.crt`` ConfigMap that
   ``clusterapi.controllers.configmap`` publishes in every namespace) and ``namespace``
   (downward API), and every init container and container that has no mount at
   ``/var/run/secrets/kubernetes.io/serviceaccount`` yet gets one, read-only.

The node agent materializes the volume and keeps the token fresh
(``clusterapi.nodeagent.runtimes.process``). This is the one place that defaults a pod's
service account; it runs before validation (mutating admission precedes validating admission,
as upstream), on create only.

Deliberate difference from upstream: a pod naming a ServiceAccount that does not exist (yet)
is admitted, not refused. Berth's ``default`` accounts are created by an asynchronous loop
(``clusterapi.controllers.serviceaccount``), and a pod created right after its namespace
must not fail for that; the node agent retries the token until the account exists, as a
kubelet retries a failed mount.
"""

from __future__ import annotations

import random
from typing import Any

from clusterapi.resources.registry import Kind

Obj = dict[str, Any]

DEFAULT_ACCOUNT = "default"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
# Upstream's magic number: an hour, plus seven seconds that mark the token as one the
# kubelet requested for this volume.
TOKEN_EXPIRATION_SECONDS = 3607
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
# Name suffixes as upstream's generateName: no vowels, no confusable characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def admit(kind: Kind, obj: Obj, old: Obj | None) -> None:
    """Default the service account of a pod being created and mount its token."""
    if kind.group or kind.kind != "Pod" or old is not None:
        return
    meta = obj.get("metadata")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return  # validation reports it
    if isinstance(meta, dict) and MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
        return  # a static pod's mirror: upstream leaves it alone
    default_account(spec)
    namespace = str(meta.get("namespace") or "") if isinstance(meta, dict) else ""
    # The account is read only when the pod leaves the choice to it: one read less per
    # create for pods that say.
    account = (
        None
        if isinstance(spec.get("automountServiceAccountToken"), bool)
        else _account(namespace, str(spec["serviceAccountName"]))
    )
    if should_automount(spec, account):
        mount_token(spec)


def default_account(spec: Obj) -> None:
    """``serviceAccountName: default`` unless named (also through the deprecated field)."""
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or DEFAULT_ACCOUNT
    spec.setdefault("serviceAccount", spec["serviceAccountName"])


def should_automount(spec: Obj, account: Obj | None) -> bool:
    """The pod's ``automountServiceAccountToken`` wins, then the account's; default true."""
    if isinstance(spec.get("automountServiceAccountToken"), bool):
        return bool(spec["automountServiceAccountToken"])
    if account is not None and isinstance(account.get("automountServiceAccountToken"), bool):
        return bool(account["automountServiceAccountToken"])
    return True


def token_volume(name: str) -> Obj:
    """The projected volume upstream's plugin adds, with the defaults the store would fill."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {
                    "serviceAccountToken": {
                        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                        "path": "token",
                    }
                },
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIGMAP,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def mount_token(spec: Obj) -> None:
    """Add the token volume and mount it in every (init) container that has no mount at
    ``MOUNT_PATH``; a pod that already has a ``kube-api-access-`` volume reuses it."""
    volumes = spec.get("volumes")
    if not isinstance(volumes, list):
        volumes = []
    names = [v.get("name") for v in volumes if isinstance(v, dict)]
    existing = next((n for n in names if isinstance(n, str) and n.startswith(VOLUME_PREFIX)), None)
    name = existing or _fresh_name(set(names))
    needed = False
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or ():
            if not isinstance(container, dict):
                continue
            mounts = container.get("volumeMounts")
            if not isinstance(mounts, list):
                mounts = []
            if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue  # the pod mounts something of its own there
            mounts.append({"name": name, "readOnly": True, "mountPath": MOUNT_PATH})
            container["volumeMounts"] = mounts
            needed = True
    if needed and existing is None:
        volumes.append(token_volume(name))
        spec["volumes"] = volumes


def _fresh_name(taken: set[Any]) -> str:
    while True:
        # Non-cryptographic, as upstream's utilrand.String: the suffix only has to be unique
        # in the pod, and a draw from the OS's generator per letter was 1% of a pod create.
        name = VOLUME_PREFIX + "".join(random.choices(_ALPHABET, k=5))  # noqa: S311
        if name not in taken:
            return name


def _account(namespace: str, name: str) -> Obj | None:
    """The ServiceAccount, or None when it does not exist (yet)."""
    from clusterapi import store
    from clusterapi.core.errors import ApiError
    from clusterapi.resources import by_kind

    kind = by_kind("v1", "ServiceAccount")
    if kind is None or not namespace or not name:
        return None
    try:
        return store.get(kind, namespace, name)
    except ApiError:
        return None
