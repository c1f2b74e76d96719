"""Privilege-escalation prevention for writes of Roles, ClusterRoles and their bindings.

Role
----
RBAC would be pointless if anyone allowed to write a Role could write one granting
everything. As upstream (``pkg/registry/rbac/*/policybased``), these checks run on every create
and update of the four RBAC kinds, whatever authorized the request itself:

* ``check_role(user, role, namespace)``: a Role or ClusterRole may be written only by someone
  who already holds every permission in it at that scope (``covers`` over the user's rules in
  the role's namespace, or cluster-wide for a ClusterRole), or who has ``escalate`` on
  ``roles``/``clusterroles``. Setting or changing a ClusterRole's ``aggregationRule`` needs
  full authority (``*`` on everything), since it can gather any permission.
* ``check_binding(user, binding, namespace)``: a RoleBinding or ClusterRoleBinding may be
  written only by someone who holds the referenced role's permissions at the binding's scope,
  or has ``bind`` on that role (which ``resourceNames`` can narrow to particular roles).
* ``check_role_ref_unchanged(old, new)``: a binding's ``roleRef`` is immutable (422).

``system:masters`` members pass without checks. Updates that only touch ``ownerReferences``
or ``finalizers`` pass too, so garbage collection never needs escalation rights. Failures are
403 Forbidden with upstream's messages; the missing permissions are listed one per line, in
``CompactString`` form.

Every check takes an optional ``policy`` (a ``PolicySet``) so it can be evaluated on
in-memory state; by default the live policy index is used.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from clusterapi.admission.names import go_quote
from clusterapi.authn import User
from clusterapi.core.errors import ApiError, Cause, invalid
from clusterapi.rbac import authorizer
from clusterapi.rbac.attributes import Attributes
from clusterapi.rbac.policy import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    ROLE,
    ROLE_BINDING,
    PolicySet,
    RoleRef,
    aggregate_errors,
)
from clusterapi.rbac.rules import (
    Rule,
    compact_rules,
    compact_string,
    covers,
    go_string_list,
    rules_from_json,
)

Obj = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"

# What "cluster-admin privileges" means for the aggregationRule check.
FULL_AUTHORITY: tuple[Rule, ...] = (
    Rule.of(["*"], groups=["*"], resources=["*"]),
    Rule.of(["*"], urls=["*"]),
)

_PLURALS = {
    ROLE: "roles",
    CLUSTER_ROLE: "clusterroles",
    ROLE_BINDING: "rolebindings",
    CLUSTER_ROLE_BINDING: "clusterrolebindings",
}


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def _forbidden(kind: str, name: str, message: str) -> ApiError:
    """``apierrors.NewForbidden`` for an RBAC resource."""
    plural = _PLURALS[kind]
    prefix = f"{plural}.{RBAC_GROUP} {go_quote(name)}" if name else f"{plural}.{RBAC_GROUP}"
    return ApiError(
        403,
        "Forbidden",
        f"{prefix} is forbidden: {message}",
        name=name,
        group=RBAC_GROUP,
        kind=plural,
    )


def _only_gc_fields_changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether ``new`` differs from ``old`` in ownerReferences/finalizers at most."""
    before = copy.deepcopy(dict(old))
    before_meta = dict(_meta(before))
    new_meta = _meta(new)
    for key in ("ownerReferences", "finalizers"):
        if key in new_meta:
            before_meta[key] = new_meta[key]
        else:
            before_meta.pop(key, None)
    # Bookkeeping the server fills in is not a change the writer asked for.
    ignored = ("resourceVersion", "managedFields", "generation")
    before["metadata"] = {k: v for k, v in before_meta.items() if k not in ignored}
    after = dict(new)
    after["metadata"] = {k: v for k, v in new_meta.items() if k not in ignored}
    return before == after


def confirm_no_escalation(
    user: User, rules: Sequence[Rule], namespace: str, policy: PolicySet | None = None
) -> str | None:
    """None when ``user`` holds all of ``rules`` in ``namespace``; else upstream's message."""
    chosen = policy if policy is not None else authorizer.current_policy()
    owner_rules, errors = chosen.rules_for(user, namespace)
    covered, missing = covers(owner_rules, rules)
    if covered:
        return None
    descriptions = sorted({compact_string(rule) for rule in compact_rules(missing)})
    message = (
        f"user {go_quote(user.name)} (groups={go_string_list(user.groups)}) is attempting to "
        "grant RBAC permissions not currently held:\n" + "\n".join(descriptions)
    )
    if errors:
        # Go prints the []error holding the one aggregate error: "[<aggregate>]".
        message += f"; resolution errors: [{aggregate_errors(errors)}]"
    return message


def _allowed(attrs: Attributes, policy: PolicySet | None) -> bool:
    return authorizer.authorize(attrs, policy=policy).allowed


def _has_aggregation_rule(obj: Mapping[str, Any] | None) -> bool:
    rule = obj.get("aggregationRule") if isinstance(obj, Mapping) else None
    return isinstance(rule, Mapping) and bool(rule.get("clusterRoleSelectors"))


def check_role(
    user: User,
    role_obj: Mapping[str, Any],
    namespace: str = "",
    *,
    old: Mapping[str, Any] | None = None,
    policy: PolicySet | None = None,
) -> None:
    """Raise 403 unless ``user`` may write this Role or ClusterRole (module docstring).

    ``old`` is the stored object on an update (None on create). As upstream, the ``escalate``
    check names the object only on updates, where the name is part of the request URL.
    """
    kind = CLUSTER_ROLE if role_obj.get("kind") == CLUSTER_ROLE else ROLE
    meta = _meta(role_obj)
    name = str(meta.get("name") or "")
    scope = "" if kind == CLUSTER_ROLE else (namespace or str(meta.get("namespace") or ""))
    if authorizer.is_privileged(user):
        return
    escalate = Attributes.for_resource(
        user,
        "escalate",
        _PLURALS[kind],
        group=RBAC_GROUP,
        version="v1",
        namespace=scope,
        name=name if old is not None else "",
    )
    if _allowed(escalate, policy):
        return
    if old is not None and _only_gc_fields_changed(role_obj, old):
        return
    message = confirm_no_escalation(user, rules_from_json(role_obj.get("rules")), scope, policy)
    if message is not None:
        raise _forbidden(kind, name, message)
    # An aggregationRule can gather any permission (and keep a role from being tightened),
    # so setting, keeping or removing one takes full authority.
    aggregating = _has_aggregation_rule(role_obj) or _has_aggregation_rule(old)
    if (
        kind == CLUSTER_ROLE
        and aggregating
        and confirm_no_escalation(user, FULL_AUTHORITY, "", policy) is not None
    ):
        raise _forbidden(
            kind, name, "must have cluster-admin privileges to use the aggregationRule"
        )


def _bind_authorized(user: User, ref: RoleRef, namespace: str, policy: PolicySet | None) -> bool:
    """Whether ``user`` has ``bind`` on the referenced role at the binding's scope."""
    if ref.kind not in (ROLE, CLUSTER_ROLE):
        return False
    attrs = Attributes.for_resource(
        user,
        "bind",
        _PLURALS[ref.kind],
        group=ref.api_group,
        namespace=namespace,
        name=ref.name,
    )
    return _allowed(attrs, policy)


def _referenced_rules(ref: RoleRef, namespace: str, policy: PolicySet) -> tuple[Rule, ...]:
    """The referenced role's rules, failing as the registry lookup upstream does."""
    if ref.kind == ROLE:
        if not namespace:
            raise ApiError(400, "BadRequest", "Namespace parameter required.")
        role = policy.role(namespace, ref.name)
        if role is None:
            raise ApiError(
                404,
                "NotFound",
                f"roles.{RBAC_GROUP} {go_quote(ref.name)} not found",
                name=ref.name,
                group=RBAC_GROUP,
                kind="roles",
            )
        return role.rules
    if ref.kind == CLUSTER_ROLE:
        cluster_role = policy.cluster_role(ref.name)
        if cluster_role is None:
            raise ApiError(
                404,
                "NotFound",
                f"clusterroles.{RBAC_GROUP} {go_quote(ref.name)} not found",
                name=ref.name,
                group=RBAC_GROUP,
                kind="clusterroles",
            )
        return cluster_role.rules
    raise ApiError(
        500,
        "InternalError",
        f"Internal error occurred: unsupported role reference kind: {go_quote(ref.kind)}",
    )


def check_binding(
    user: User,
    binding_obj: Mapping[str, Any],
    namespace: str = "",
    *,
    old: Mapping[str, Any] | None = None,
    policy: PolicySet | None = None,
) -> None:
    """Raise 403 unless ``user`` may write this RoleBinding or ClusterRoleBinding.

    Allowed when the user holds ``bind`` on the referenced role, or already holds all of its
    permissions at the binding's scope (the binding's namespace; cluster-wide for a
    ClusterRoleBinding). A reference to a missing role is 404, as upstream.
    """
    kind = CLUSTER_ROLE_BINDING if binding_obj.get("kind") == CLUSTER_ROLE_BINDING else ROLE_BINDING
    meta = _meta(binding_obj)
    name = str(meta.get("name") or "")
    scope = "" if kind == CLUSTER_ROLE_BINDING else (namespace or str(meta.get("namespace") or ""))
    if authorizer.is_privileged(user):
        return
    if old is not None and _only_gc_fields_changed(binding_obj, old):
        return
    ref = RoleRef.from_json(binding_obj.get("roleRef"))
    if _bind_authorized(user, ref, scope, policy):
        return
    chosen = policy if policy is not None else authorizer.current_policy()
    rules = _referenced_rules(ref, scope, chosen)
    message = confirm_no_escalation(user, rules, scope, chosen)
    if message is not None:
        raise _forbidden(kind, name, message)


def check_role_ref_unchanged(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """422 Invalid when an update changes a binding's ``roleRef`` (it is immutable)."""
    before = RoleRef.from_json(old.get("roleRef"))
    after = RoleRef.from_json(new.get("roleRef"))
    if before == after:
        return
    from clusterapi.resources import by_kind

    kind_name = str(new.get("kind") or old.get("kind") or ROLE_BINDING)
    kind = by_kind(f"{RBAC_GROUP}/v1", kind_name)
    shown = (
        f"rbac.RoleRef{{APIGroup:{go_quote(after.api_group)}, Kind:{go_quote(after.kind)}, "
        f"Name:{go_quote(after.name)}}}"
    )
    cause = Cause("FieldValueInvalid", f"Invalid value: {shown}: cannot change roleRef", "roleRef")
    name = str(_meta(new).get("name") or _meta(old).get("name") or "")
    if kind is None:  # pragma: no cover - the four RBAC kinds are always registered
        raise ApiError(422, "Invalid", f"roleRef: {cause.message}", causes=[cause])
    raise invalid(kind, name, [cause])
