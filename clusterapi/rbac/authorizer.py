"""The one authorizer: the API, the dashboard and the admin site all ask ``authorize``.

Flow of a decision
------------------
``authorize(attrs)`` runs Kubernetes' authorizer chain for RBAC mode, first opinion wins:

1. members of ``system:masters`` are allowed everything, without looking at any policy;
2. the Node authorizer (``clusterapi.rbac.node``) for node identities;
3. RBAC: the rules of the stored Roles, ClusterRoles, RoleBindings and ClusterRoleBindings
   (``clusterapi.rbac.policy.PolicySet.evaluate``, the pure core);

and denies when no one allowed, with the reasons the authorizers gave joined by newlines.
``forbidden_message``/``forbidden_error`` turn a denial into upstream's 403 text.

The policy index
----------------
Reading four tables on every request would be slow, so the RBAC objects are held in memory as
one immutable ``PolicySet``. It is rebuilt

* after ``invalidate()``, which the store's on-commit hook calls for writes of RBAC kinds in
  this process, and
* when a cheap probe finds that the newest change-log revision of the four RBAC resources
  moved (a write by another process), probed at most once every ``RECHECK_SECONDS``.

The probe is taken before the objects are read, so a write racing a rebuild is picked up by
the next probe at the latest. Callers that already hold a ``PolicySet`` (tests, what-if
previews) pass it as ``policy=`` and no database is read for RBAC.

Reviews
-------
``rules_for`` answers SelfSubjectRulesReview (``kubectl auth can-i --list``) and ``who_can``
the question Kubernetes leaves to plugins: which users, groups and service accounts may do
something, and through which binding and role.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from clusterapi.admission.names import go_quote
from clusterapi.authn import User
from clusterapi.core.errors import ApiError
from clusterapi.rbac import node
from clusterapi.rbac.attributes import Attributes
from clusterapi.rbac.policy import Decision, Grant, PolicySet, aggregate_errors

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_RESOURCES = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
PRIVILEGED_GROUP = "system:masters"

# How often the index asks the database whether another process changed RBAC objects.
RECHECK_SECONDS = 1.0


# --- the policy index -------------------------------------------------------------------------


def load_policy() -> PolicySet:
    """A fresh snapshot of the stored RBAC objects."""
    from clusterapi import store
    from clusterapi.resources import by_kind

    objects: list[dict[str, Any]] = []
    for kind_name in RBAC_KINDS:
        kind = by_kind(f"{RBAC_GROUP}/v1", kind_name)
        if kind is not None:
            objects.extend(store.list_objects(kind).objects())
    return PolicySet.from_objects(objects)


def _probe() -> tuple[tuple[str, int], ...]:
    """The newest change-log revision of each RBAC resource (cheap: one index seek each)."""
    from clusterapi.core.models import Change

    marker: list[tuple[str, int]] = []
    for resource in RBAC_RESOURCES:
        newest = (
            Change.objects.filter(resource=resource, group=RBAC_GROUP)
            .order_by("-revision")
            .values_list("revision", flat=True)
            .first()
        )
        marker.append((resource, int(newest or 0)))
    return tuple(marker)


@dataclass
class _Index:
    lock: threading.Lock = field(default_factory=threading.Lock)
    policy: PolicySet | None = None
    marker: tuple[tuple[str, int], ...] = ()
    checked_at: float = 0.0
    # invalidate() bumps ``generation``; a snapshot is current only if built at the latest.
    generation: int = 0
    built_generation: int = -1

    def fresh(self, now: float) -> PolicySet | None:
        if (
            self.policy is not None
            and self.built_generation == self.generation
            and now - self.checked_at < RECHECK_SECONDS
        ):
            return self.policy
        return None


_index = _Index()


def invalidate() -> None:
    """Mark the in-process policy stale (call after committing a write of an RBAC kind)."""
    _index.generation += 1


def current_policy() -> PolicySet:
    """The policy snapshot to decide with, rebuilt if RBAC objects changed (module docstring)."""
    cached = _index.fresh(time.monotonic())
    if cached is not None:
        return cached
    with _index.lock:
        cached = _index.fresh(time.monotonic())
        if cached is not None:
            return cached
        generation = _index.generation
        marker = _probe()
        if (
            _index.policy is None
            or _index.built_generation != generation
            or marker != _index.marker
        ):
            _index.policy = load_policy()
            _index.marker = marker
        _index.built_generation = generation
        _index.checked_at = time.monotonic()
        return _index.policy


# --- decisions ----------------------------------------------------------------------------


def is_privileged(user: User) -> bool:
    """Whether the user is in ``system:masters``, which bypasses authorization."""
    return PRIVILEGED_GROUP in user.groups


def evaluate(attrs: Attributes, policy: PolicySet) -> Decision:
    """The RBAC authorizer alone, on a given policy (the pure core; no database)."""
    return policy.evaluate(attrs)


def authorize(
    attrs: Attributes,
    *,
    policy: PolicySet | None = None,
    graph: node.NodeGraph | None = None,
) -> Decision:
    """Whether the request is allowed: system:masters, then Node, then RBAC (first allow wins).

    ``policy`` replaces the stored RBAC objects and ``graph`` the Node authorizer's object
    lookups, for callers that evaluate hypothetical or in-memory state.
    """
    if is_privileged(attrs.user):
        return Decision(True, "")
    reasons: list[str] = []
    node_decision = node.authorize(attrs, graph)
    if node_decision.allowed:
        return node_decision
    if node_decision.reason:
        reasons.append(node_decision.reason)
    rbac_decision = (policy if policy is not None else current_policy()).evaluate(attrs)
    if rbac_decision.allowed:
        return rbac_decision
    if rbac_decision.reason:
        reasons.append(rbac_decision.reason)
    return Decision(False, "\n".join(reasons))


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The 403 message upstream answers a denied request with.

    ``pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the
    namespace "team-a"``; ``pods "x" is forbidden: ...`` for a named object, ``... at the
    cluster scope`` without a namespace, ``forbidden: User "bob" cannot get path "/metrics"``
    for non-resource requests, and ``: <reason>`` appended when the authorizers gave one.
    """
    username = go_quote(attrs.user.name)
    if not attrs.resource_request:
        detail = f"User {username} cannot {attrs.verb} path {go_quote(attrs.path)}"
    else:
        scope = (
            f"in the namespace {go_quote(attrs.namespace)}"
            if attrs.namespace
            else "at the cluster scope"
        )
        detail = (
            f"User {username} cannot {attrs.verb} resource "
            f"{go_quote(attrs.combined_resource)} in API group {go_quote(attrs.api_group)} "
            f"{scope}"
        )
    if reason:
        detail = f"{detail}: {reason}"
    # apierrors.NewForbidden: the group-qualified resource, then the name if there is one.
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if not qualified:
        return f"forbidden: {detail}"
    if attrs.name:
        return f"{qualified} {go_quote(attrs.name)} is forbidden: {detail}"
    return f"{qualified} is forbidden: {detail}"


def forbidden_error(attrs: Attributes, reason: str = "") -> ApiError:
    """The 403 ``Status`` for a denied request (message, and details as upstream fills them)."""
    return ApiError(
        403,
        "Forbidden",
        forbidden_message(attrs, reason),
        name=attrs.name,
        group=attrs.api_group,
        kind=attrs.resource,
    )


def check(attrs: Attributes) -> None:
    """Raise the 403 for ``attrs`` unless it is allowed."""
    decision = authorize(attrs)
    if not decision.allowed:
        raise forbidden_error(attrs, decision.reason)


# --- reviews ------------------------------------------------------------------------------


@dataclass
class RulesReview:
    """A SelfSubjectRulesReview's status: the rules a user has in a namespace."""

    resource_rules: list[dict[str, list[str]]] = field(default_factory=list)
    non_resource_rules: list[dict[str, list[str]]] = field(default_factory=list)
    incomplete: bool = False
    evaluation_error: str = ""

    def to_status(self) -> dict[str, Any]:
        """The ``status`` object of the review, as served."""
        status: dict[str, Any] = {
            "resourceRules": self.resource_rules,
            "nonResourceRules": self.non_resource_rules,
            "incomplete": self.incomplete,
        }
        if self.evaluation_error:
            status["evaluationError"] = self.evaluation_error
        return status


def rules_for(user: User, namespace: str, *, policy: PolicySet | None = None) -> RulesReview:
    """What ``user`` may do in ``namespace`` (``kubectl auth can-i --list``).

    As upstream, the rules come from the RBAC bindings (system:masters members see what their
    bindings give, normally cluster-admin's); node identities are marked incomplete, since
    the Node authorizer cannot list its object-scoped permissions.
    """
    review = RulesReview()
    errors: list[str] = []
    _, is_node = node.node_identity(user)
    if is_node:
        review.incomplete = True
        errors.append("node authorizer does not support user rule resolution")
    rules, rbac_errors = (policy if policy is not None else current_policy()).rules_for(
        user, namespace
    )
    for rule in rules:
        if rule.resources:
            resource_rule: dict[str, list[str]] = {"verbs": list(rule.verbs)}
            if rule.api_groups:
                resource_rule["apiGroups"] = list(rule.api_groups)
            resource_rule["resources"] = list(rule.resources)
            if rule.resource_names:
                resource_rule["resourceNames"] = list(rule.resource_names)
            review.resource_rules.append(resource_rule)
        if rule.non_resource_urls:
            review.non_resource_rules.append(
                {"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)}
            )
    if rbac_errors:
        errors.append(aggregate_errors(rbac_errors))
    review.evaluation_error = aggregate_errors(errors) if errors else ""
    return review


def who_can(
    verb: str,
    api_group: str,
    resource: str,
    subresource: str = "",
    namespace: str = "",
    name: str = "",
    *,
    policy: PolicySet | None = None,
) -> list[Grant]:
    """Who may do this: ``system:masters`` (a bypass), nodes (when the Node authorizer could
    allow it, with a note saying for which objects), then every RBAC binding subject whose
    role allows it, with the binding and role that grant it.
    """
    grants = [
        Grant(
            subject_kind="Group",
            subject_name=PRIVILEGED_GROUP,
            bypass=True,
            note="members of system:masters bypass authorization",
        )
    ]
    capability = node.describe_capability(verb, api_group, resource, subresource)
    if capability is not None:
        grants.append(
            Grant(
                subject_kind="Group",
                subject_name=node.NODES_GROUP,
                note=f"Node authorizer: {capability}",
            )
        )
    chosen = policy if policy is not None else current_policy()
    grants.extend(chosen.grants(verb, api_group, resource, subresource, namespace, name))
    return grants
