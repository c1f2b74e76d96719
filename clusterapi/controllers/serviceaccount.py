"""The service account controller: every active namespace has a ``default`` ServiceAccount.

As upstream's ``serviceaccounts-controller``: the account is created when a namespace appears
and again whenever it is deleted (a ServiceAccount change wakes its namespace); a Terminating
namespace is left alone, since its contents are being removed. Pods without
``serviceAccountName`` get ``default`` at create (``clusterapi.admission.serviceaccount``).
"""

from __future__ import annotations

from typing import Any

from clusterapi import store
from clusterapi.controllers.base import Controller, active_namespace, namespace_of_named
from clusterapi.resources import by_kind
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]
DEFAULT = "default"
COMPONENT = "service-account-controller"


def reconcile(_namespace: str, name: str) -> float | None:
    """Ensure namespace ``name`` has its ``default`` ServiceAccount."""
    account_kind = by_kind("v1", "ServiceAccount")
    assert account_kind is not None
    if active_namespace(name) is None:
        return None
    try:
        store.get(account_kind, name, DEFAULT)
        return None
    except ApiError as exc:
        if exc.reason != "NotFound":
            raise
    try:
        store.create(
            account_kind,
            {"metadata": {"name": DEFAULT, "namespace": name}},
            namespace=name,
            field_manager=COMPONENT,
        )
    except ApiError as exc:
        # Raced with another creator, or the namespace began terminating meanwhile.
        if exc.reason not in ("AlreadyExists", "NotFound", "Forbidden"):
            raise
    return None


CONTROLLER = Controller(
    name="serviceaccount",
    kind="Namespace",
    reconcile=reconcile,
    watches={"ServiceAccount": namespace_of_named(DEFAULT)},
)
