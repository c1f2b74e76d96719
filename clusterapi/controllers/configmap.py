"""The root CA publisher: every active namespace has the ConfigMap ``kube-root-ca.crt``.

As upstream's ``root-ca-cert-publisher``: the ConfigMap holds one key, ``ca.crt``, the CA
bundle that verifies the API server's serving certificate (this instance's CA,
``clusterapi.pki``), so that a pod can trust the API server it reaches in-cluster. Every pod's
token volume projects it (``clusterapi.admission.serviceaccount``).

Flow: keyed by Namespace. A namespace appearing, or the ConfigMap being changed or deleted
(a change to any ConfigMap of that name wakes its namespace), makes ``reconcile`` create it
or put its data and description annotation back — extra keys a user added are dropped, as
upstream does. A Terminating namespace is left alone, since its contents are being removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from clusterapi import pki, store
from clusterapi.controllers.base import Controller, active_namespace, namespace_of_named
from clusterapi.resources import by_kind
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]
NAME = "kube-root-ca.crt"
KEY = "ca.crt"
COMPONENT = "root-ca-cert-publisher"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "The CA bundle that verifies the API server when it is reached through its in-cluster "
    "address (KUBERNETES_SERVICE_HOST, kubernetes.default.svc). Meant for that use only."
)


def ca_bundle() -> str:
    """The PEM of the CA that signs this instance's serving certificate."""
    certs = pki.ensure(Path(settings.DATA_DIR))
    return certs.ca_cert.read_text()


def reconcile(_namespace: str, name: str) -> float | None:
    """Ensure namespace ``name`` has ``kube-root-ca.crt`` with the current CA bundle."""
    configmap_kind = by_kind("v1", "ConfigMap")
    assert configmap_kind is not None
    if active_namespace(name) is None:
        return None
    data = {KEY: ca_bundle()}

    def converge(current: Obj) -> Obj:
        current["data"] = dict(data)
        current.pop("binaryData", None)
        annotations = current["metadata"].get("annotations") or {}
        annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
        current["metadata"]["annotations"] = annotations
        return current

    try:
        current = store.get(configmap_kind, name, NAME)
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
        current = None
    if current is None:
        try:
            store.create(
                configmap_kind,
                converge({"metadata": {"name": NAME, "namespace": name}}),
                namespace=name,
                field_manager=COMPONENT,
            )
        except ApiError as exc:
            # Raced with another worker, or the namespace began terminating meanwhile: the
            # wake-up that follows (or the resync) looks again.
            if exc.reason not in ("AlreadyExists", "NotFound", "Forbidden"):
                raise
        return None
    annotations = current["metadata"].get("annotations") or {}
    if (
        current.get("data") == data
        and not current.get("binaryData")
        and annotations.get(DESCRIPTION_ANNOTATION)
    ):
        return None
    try:
        store.guaranteed_update(configmap_kind, name, NAME, converge, field_manager=COMPONENT)
    except ApiError as exc:
        if exc.reason not in ("NotFound", "Forbidden"):
            raise
    return None


CONTROLLER = Controller(
    name="root-ca-cert-publisher",
    kind="Namespace",
    reconcile=reconcile,
    watches={"ConfigMap": namespace_of_named(NAME)},
)
