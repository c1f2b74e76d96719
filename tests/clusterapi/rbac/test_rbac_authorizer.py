"""The authorizer: RBAC semantics on in-memory policies, 403 wording, reviews, and the index.

Semantics follow rbac.md and rule.go; the messages are those kubectl prints against a real
API server (responsewriters/errors.go, apierrors.NewForbidden).
"""

from __future__ import annotations

import time

import pytest

from clusterapi import store
from clusterapi.rbac import authorizer
from clusterapi.rbac.attributes import Attributes
from clusterapi.rbac.policy import PolicySet
from tests.clusterapi.rbac.helpers import (
    binding,
    cluster_binding,
    cluster_role,
    group_subject,
    kind_of,
    namespace,
    put,
    request,
    role,
    rule,
    sa_subject,
    user,
    user_subject,
)

BOB = user("bob", "system:authenticated", "devs")
POD_READER = cluster_role("pod-reader", rule(["get", "list", "watch"], [""], ["pods"]))


def policy(*objects: dict[str, object]) -> PolicySet:
    return PolicySet.from_objects(objects)


def allowed(p: PolicySet, attrs: Attributes) -> bool:
    return authorizer.authorize(attrs, policy=p).allowed


# --- RBAC semantics -------------------------------------------------------------------------


def test_everything_is_denied_without_bindings() -> None:
    assert not allowed(policy(POD_READER), request(BOB, "get", "pods", namespace="a"))


def test_system_masters_bypasses_every_rule() -> None:
    root = user("root", "system:masters")
    assert allowed(policy(), request(root, "delete", "nodes", name="n1"))
    assert allowed(policy(), Attributes.for_path(root, "get", "/metrics"))


def test_a_cluster_role_binding_grants_in_every_namespace_and_cluster_wide() -> None:
    p = policy(POD_READER, cluster_binding("r", "pod-reader", user_subject("bob")))
    assert allowed(p, request(BOB, "get", "pods", namespace="a"))
    assert allowed(p, request(BOB, "list", "pods"))
    assert not allowed(p, request(BOB, "delete", "pods", namespace="a"))


def test_a_role_binding_to_a_cluster_role_applies_only_in_its_namespace() -> None:
    p = policy(POD_READER, binding("team-a", "r", "pod-reader", user_subject("bob")))
    assert allowed(p, request(BOB, "get", "pods", namespace="team-a"))
    assert not allowed(p, request(BOB, "get", "pods", namespace="team-b"))
    assert not allowed(p, request(BOB, "list", "pods"))


def test_a_role_binding_reaches_only_roles_of_its_own_namespace() -> None:
    p = policy(
        role("team-b", "reader", rule(["get"], [""], ["pods"])),
        binding("team-a", "r", "reader", user_subject("bob"), role_kind="Role"),
    )
    assert not allowed(p, request(BOB, "get", "pods", namespace="team-a"))
    p = policy(
        role("team-a", "reader", rule(["get"], [""], ["pods"])),
        binding("team-a", "r", "reader", user_subject("bob"), role_kind="Role"),
    )
    assert allowed(p, request(BOB, "get", "pods", namespace="team-a"))


def test_a_cluster_role_binding_to_a_role_resolves_nothing() -> None:
    p = policy(
        role("team-a", "reader", rule(["get"], [""], ["pods"])),
        cluster_binding("r", "reader", user_subject("bob"), role_kind="Role"),
    )
    decision = authorizer.authorize(request(BOB, "get", "pods", namespace="team-a"), policy=p)
    assert not decision.allowed
    assert decision.reason == 'RBAC: role.rbac.authorization.k8s.io "reader" not found'


def test_non_resource_urls_are_granted_only_through_cluster_role_bindings() -> None:
    metrics = cluster_role("metrics", rule(["get"], urls=["/metrics"]))
    through_role_binding = policy(metrics, binding("team-a", "m", "metrics", user_subject("bob")))
    assert not allowed(through_role_binding, Attributes.for_path(BOB, "get", "/metrics"))
    through_cluster_binding = policy(metrics, cluster_binding("m", "metrics", user_subject("bob")))
    assert allowed(through_cluster_binding, Attributes.for_path(BOB, "get", "/metrics"))
    assert not allowed(through_cluster_binding, Attributes.for_path(BOB, "post", "/metrics"))


def test_groups_match_by_membership() -> None:
    p = policy(POD_READER, cluster_binding("r", "pod-reader", group_subject("devs")))
    assert allowed(p, request(BOB, "get", "pods", namespace="a"))
    assert not allowed(p, request(user("eve", "ops"), "get", "pods", namespace="a"))


def test_service_accounts_match_their_user_name_and_default_to_the_binding_namespace() -> None:
    robot = user("system:serviceaccount:team-a:robot", "system:serviceaccounts")
    unqualified = policy(POD_READER, binding("team-a", "r", "pod-reader", sa_subject("robot")))
    assert allowed(unqualified, request(robot, "get", "pods", namespace="team-a"))
    other_namespace = policy(POD_READER, binding("team-b", "r", "pod-reader", sa_subject("robot")))
    assert not allowed(other_namespace, request(robot, "get", "pods", namespace="team-b"))
    qualified = policy(
        POD_READER, binding("team-b", "r", "pod-reader", sa_subject("robot", "team-a"))
    )
    assert allowed(qualified, request(robot, "get", "pods", namespace="team-b"))
    # A ClusterRoleBinding has no namespace to lend an unqualified service account.
    cluster_unqualified = policy(
        POD_READER, cluster_binding("r", "pod-reader", sa_subject("robot"))
    )
    assert not allowed(cluster_unqualified, request(robot, "get", "pods", namespace="team-a"))
    cluster_qualified = policy(
        POD_READER, cluster_binding("r", "pod-reader", sa_subject("robot", "team-a"))
    )
    assert allowed(cluster_qualified, request(robot, "get", "pods", namespace="x"))


def test_unknown_subject_kinds_match_no_one() -> None:
    p = policy(POD_READER, cluster_binding("r", "pod-reader", {"kind": "Robot", "name": "bob"}))
    assert not allowed(p, request(BOB, "get", "pods", namespace="a"))


def test_resource_names_limit_gets_but_never_allow_unnamed_lists() -> None:
    p = policy(
        cluster_role("one", rule(["get", "list"], [""], ["configmaps"], names=["settings"])),
        cluster_binding("r", "one", user_subject("bob")),
    )
    assert allowed(p, request(BOB, "get", "configmaps", namespace="a", name="settings"))
    assert not allowed(p, request(BOB, "get", "configmaps", namespace="a", name="other"))
    assert not allowed(p, request(BOB, "list", "configmaps", namespace="a"))
    assert allowed(p, request(BOB, "list", "configmaps", namespace="a", name="settings"))


def test_the_allow_reason_names_the_binding_role_and_subject() -> None:
    p = policy(POD_READER, binding("team-a", "readers", "pod-reader", sa_subject("robot")))
    robot = user("system:serviceaccount:team-a:robot")
    decision = authorizer.authorize(request(robot, "get", "pods", namespace="team-a"), policy=p)
    assert decision.allowed
    assert decision.reason == (
        'RBAC: allowed by RoleBinding "readers/team-a" of ClusterRole "pod-reader" to '
        'ServiceAccount "robot/team-a"'
    )
    p = policy(POD_READER, cluster_binding("readers", "pod-reader", group_subject("devs")))
    decision = authorizer.authorize(request(BOB, "get", "pods", namespace="a"), policy=p)
    assert decision.reason == (
        'RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "pod-reader" to Group "devs"'
    )


def test_missing_roles_are_reported_as_the_denial_reason_deduplicated() -> None:
    p = policy(
        cluster_binding("a", "gone", user_subject("bob")),
        cluster_binding("b", "gone", user_subject("bob")),
        binding("team-a", "c", "absent", user_subject("bob"), role_kind="Role"),
    )
    decision = authorizer.authorize(request(BOB, "get", "pods", namespace="team-a"), policy=p)
    assert decision.reason == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
        'role.rbac.authorization.k8s.io "absent" not found]'
    )
    assert not decision.denied


# --- 403 wording ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            request(BOB, "create", "pods", namespace="team-a"),
            'pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the '
            'namespace "team-a"',
        ),
        (
            request(BOB, "get", "pods", namespace="team-a", name="x"),
            'pods "x" is forbidden: User "bob" cannot get resource "pods" in API group "" in the '
            'namespace "team-a"',
        ),
        (
            request(BOB, "list", "nodes"),
            'nodes is forbidden: User "bob" cannot list resource "nodes" in API group "" at the '
            "cluster scope",
        ),
        (
            request(BOB, "get", "pods", namespace="team-a", name="x", subresource="log"),
            'pods "x" is forbidden: User "bob" cannot get resource "pods/log" in API group "" in '
            'the namespace "team-a"',
        ),
        (
            request(
                BOB,
                "update",
                "deployments",
                group="apps",
                namespace="a",
                name="w",
                subresource="scale",
            ),
            'deployments.apps "w" is forbidden: User "bob" cannot update resource '
            '"deployments/scale" in API group "apps" in the namespace "a"',
        ),
        (
            Attributes.for_path(BOB, "get", "/metrics"),
            'forbidden: User "bob" cannot get path "/metrics"',
        ),
    ],
)
def test_forbidden_messages_match_upstream(attrs: Attributes, message: str) -> None:
    assert authorizer.forbidden_message(attrs) == message


def test_forbidden_messages_carry_the_reason_and_status_details() -> None:
    attrs = request(BOB, "get", "pods", namespace="a", name="x")
    assert authorizer.forbidden_message(attrs, "RBAC: boom").endswith(
        'in the namespace "a": RBAC: boom'
    )
    error = authorizer.forbidden_error(
        request(BOB, "get", "deployments", group="apps", name="w", namespace="a")
    )
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.details() == {"name": "w", "group": "apps", "kind": "deployments"}


# --- reviews --------------------------------------------------------------------------------


def test_rules_for_lists_resource_and_non_resource_rules_of_the_namespace() -> None:
    p = policy(
        POD_READER,
        cluster_role("discovery", rule(["get"], urls=["/api", "/api/*"])),
        cluster_role("secret", rule(["get"], [""], ["secrets"], names=["token"])),
        cluster_binding("d", "discovery", group_subject("system:authenticated")),
        binding("team-a", "r", "pod-reader", user_subject("bob")),
        binding("team-b", "s", "secret", user_subject("bob")),
    )
    review = authorizer.rules_for(BOB, "team-a", policy=p)
    assert review.to_status() == {
        "resourceRules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}
        ],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*"]}],
        "incomplete": False,
    }
    other = authorizer.rules_for(BOB, "team-b", policy=p)
    assert other.resource_rules == [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["token"]}
    ]


def test_rules_for_reports_resolution_errors_and_incomplete_node_rules() -> None:
    p = policy(cluster_binding("x", "gone", group_subject("system:nodes")))
    node = user("system:node:n1", "system:nodes")
    review = authorizer.rules_for(node, "default", policy=p)
    assert review.incomplete
    assert review.evaluation_error == (
        "[node authorizer does not support user rule resolution, "
        'clusterrole.rbac.authorization.k8s.io "gone" not found]'
    )


def test_who_can_lists_bypass_then_the_bindings_that_grant() -> None:
    p = policy(
        POD_READER,
        cluster_role("secrets", rule(["get"], [""], ["secrets"])),
        cluster_binding(
            "all-readers", "pod-reader", group_subject("auditors"), sa_subject("ci", "tools")
        ),
        binding("team-a", "team", "pod-reader", user_subject("bob"), sa_subject("robot")),
        binding("team-b", "other", "pod-reader", user_subject("eve")),
        cluster_binding("nobody", "pod-reader", sa_subject("unqualified")),
        binding("team-a", "s", "secrets", user_subject("mallory")),
    )
    grants = authorizer.who_can("get", "", "pods", namespace="team-a", name="web", policy=p)
    assert grants[0].bypass and grants[0].subject_name == "system:masters"
    assert grants[1].subject_name == "system:nodes" and "all pods" in grants[1].note
    rbac = [
        (g.subject_kind, g.username or g.subject_name, g.binding_kind, g.binding_name, g.role_name)
        for g in grants[2:]
    ]
    assert rbac == [
        ("Group", "auditors", "ClusterRoleBinding", "all-readers", "pod-reader"),
        (
            "ServiceAccount",
            "system:serviceaccount:tools:ci",
            "ClusterRoleBinding",
            "all-readers",
            "pod-reader",
        ),
        ("User", "bob", "RoleBinding", "team", "pod-reader"),
        (
            "ServiceAccount",
            "system:serviceaccount:team-a:robot",
            "RoleBinding",
            "team",
            "pod-reader",
        ),
    ]


def test_who_can_agrees_with_authorize() -> None:
    p = policy(
        POD_READER,
        binding("team-a", "team", "pod-reader", user_subject("bob"), group_subject("devs")),
    )
    for grant in authorizer.who_can("list", "", "pods", namespace="team-a", policy=p)[2:]:
        who = user(grant.username) if grant.username else user("someone", grant.subject_name)
        assert allowed(p, request(who, "list", "pods", namespace="team-a"))


# --- the database-backed index --------------------------------------------------------------


@pytest.mark.django_db
def test_authorize_reads_the_stored_policy() -> None:
    namespace("team-a")
    put(POD_READER)
    put(binding("team-a", "r", "pod-reader", user_subject("bob")))
    assert authorizer.authorize(request(BOB, "get", "pods", namespace="team-a")).allowed
    assert not authorizer.authorize(request(BOB, "get", "pods", namespace="team-b")).allowed


@pytest.mark.django_db
def test_the_index_is_rebuilt_after_invalidate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authorizer, "RECHECK_SECONDS", 3600.0)
    namespace("team-a")
    put(POD_READER)
    attrs = request(BOB, "get", "pods", namespace="team-a")
    assert not authorizer.authorize(attrs).allowed
    # Written as another process would: no invalidate() in this one.
    store.create(
        kind_of("RoleBinding"),
        binding("team-a", "r", "pod-reader", user_subject("bob")),
        namespace="team-a",
    )
    assert not authorizer.authorize(attrs).allowed, "cached for RECHECK_SECONDS"
    authorizer.invalidate()
    assert authorizer.authorize(attrs).allowed


@pytest.mark.django_db
def test_the_index_notices_writes_by_other_processes_on_its_next_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(authorizer, "RECHECK_SECONDS", 0.05)
    namespace("team-a")
    put(POD_READER)
    attrs = request(BOB, "get", "pods", namespace="team-a")
    assert not authorizer.authorize(attrs).allowed
    store.create(
        kind_of("RoleBinding"),
        binding("team-a", "r", "pod-reader", user_subject("bob")),
        namespace="team-a",
    )
    time.sleep(0.06)
    assert authorizer.authorize(attrs).allowed
    store.delete(kind_of("RoleBinding"), "team-a", "r")
    time.sleep(0.06)
    assert not authorizer.authorize(attrs).allowed


@pytest.mark.django_db
def test_the_probe_does_not_reload_an_unchanged_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authorizer, "RECHECK_SECONDS", 0.0)
    put(POD_READER)
    first = authorizer.current_policy()
    assert authorizer.current_policy() is first
    put(cluster_role("another"))
    assert authorizer.current_policy() is not first


@pytest.mark.django_db
def test_check_raises_the_upstream_403() -> None:
    with pytest.raises(store.ApiError) as caught:
        authorizer.check(request(BOB, "delete", "pods", namespace="a", name="x"))
    assert caught.value.message == (
        'pods "x" is forbidden: User "bob" cannot delete resource "pods" in API group "" in the '
        'namespace "a"'
    )
