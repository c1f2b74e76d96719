"""Admission: what every object passes before the store writes it.

The store calls ``admit`` on each create and update, after the kind's defaulting:

0. mutating plugins, for every writer (``MUTATING_PLUGINS``): ``serviceaccount`` gives a new
   pod its service account and the projected volume with its token;
1. ``validation``: the object against the kind's kubernetes-validate schema (unknown fields
   are rejected, warned about or dropped according to the request's ``fieldValidation``;
   mistyped fields are 422 Invalid with field paths), quantities canonicalised, names, labels
   and annotations validated, and the kind's own ``validate`` hook;
2. for requests made on behalf of a user (``user`` given; the control plane's own loops pass
   none), the plugins in ``USER_PLUGINS``: RBAC escalation prevention and node restriction.

Nothing is written unless admission passes. Later issues add LimitRange and ResourceQuota here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clusterapi.admission import rbac, serviceaccount
from clusterapi.admission.validation import validate_object
from clusterapi.resources.registry import Kind

Obj = dict[str, Any]
UserPlugin = Callable[[Kind, Obj, "Obj | None", Any, str], None]
MutatingPlugin = Callable[[Kind, Obj, "Obj | None"], None]

# Mutations come first, so that validation sees (and checks) what they added, as upstream
# runs mutating admission before validating admission.
MUTATING_PLUGINS: tuple[MutatingPlugin, ...] = (serviceaccount.admit,)

USER_PLUGINS: tuple[UserPlugin, ...] = (rbac.admit_user,)


def admit(
    kind: Kind,
    obj: Obj,
    old: Obj | None,
    *,
    field_validation: str = "Strict",
    user: Any = None,
    subresource: str = "",
) -> list[str]:
    """Validate and admit ``obj``; returns warnings, raises ``ApiError`` when rejected."""
    for mutate in MUTATING_PLUGINS:
        mutate(kind, obj, old)
    # A binding sets spec.nodeName (checked by the caller) on an object that was valid as
    # stored; upstream's binding skips the pod's validation too. Validating the whole pod
    # again was half of every bind's cost. A status write checks the status it brings.
    warnings = (
        []
        if subresource == "binding"
        else validate_object(
            kind,
            obj,
            old,
            field_validation=field_validation,
            status_only=subresource == "status",
        )
    )
    rbac.admit_any(kind, obj, old)
    if user is not None:
        for plugin in USER_PLUGINS:
            plugin(kind, obj, old, user, subresource)
    return warnings


def admit_delete(kind: Kind, old: Obj, user: Any) -> None:
    """User checks on a delete (node restriction); the loops (no user) always pass."""
    if user is not None:
        rbac.admit_delete(kind, old, user)


__all__ = ["MUTATING_PLUGINS", "USER_PLUGINS", "admit", "admit_delete"]
