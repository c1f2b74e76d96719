"""Admission of RBAC objects and node writes, backed by ``clusterapi.rbac``.

* Every writer: a binding's ``roleRef`` cannot change (422), as upstream's validation.
* Users: a Role/ClusterRole only by someone holding all of its permissions (or ``escalate``),
  a binding only by someone holding the role's permissions (or ``bind`` on it), as upstream's
  RBAC REST storage enforces; node identities only within NodeRestriction's limits.
"""

from __future__ import annotations

from typing import Any

from clusterapi.resources.registry import Kind

Obj = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"


def admit_any(kind: Kind, obj: Obj, old: Obj | None) -> None:
    if kind.group == RBAC_GROUP and kind.kind.endswith("Binding") and old is not None:
        from clusterapi.rbac import escalation

        escalation.check_role_ref_unchanged(old, obj)


def admit_user(kind: Kind, obj: Obj, old: Obj | None, user: Any, subresource: str = "") -> None:
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    if kind.group == RBAC_GROUP:
        from clusterapi.rbac import escalation

        if kind.kind in ("Role", "ClusterRole"):
            escalation.check_role(user, obj, namespace, old=old)
        else:
            escalation.check_binding(user, obj, namespace, old=old)
    from clusterapi.rbac import node

    node.admit(
        user,
        "UPDATE" if old is not None else "CREATE",
        kind.group,
        kind.plural,
        subresource,
        namespace,
        str(meta.get("name", "")),
        obj,
        old,
    )


def admit_delete(kind: Kind, old: Obj, user: Any) -> None:
    """NodeRestriction on deletes: a node removes only what is its own."""
    from clusterapi.rbac import node

    meta = old.get("metadata") or {}
    node.admit(
        user,
        "DELETE",
        kind.group,
        kind.plural,
        "",
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        None,
        old,
    )
