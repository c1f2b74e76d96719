"""Privilege-escalation prevention on writes of roles and bindings (rbac.md, rule.go)."""

from __future__ import annotations

import copy

import pytest

from clusterapi.core.errors import ApiError
from clusterapi.rbac import escalation
from clusterapi.rbac.policy import PolicySet
from tests.clusterapi.rbac.helpers import (
    binding,
    cluster_binding,
    cluster_role,
    namespace,
    put,
    role,
    rule,
    user,
    user_subject,
)

BOB = user("bob", "system:authenticated", "devs")
POD_RULES = rule(["get", "list"], [""], ["pods"])


def policy(*objects: dict[str, object]) -> PolicySet:
    return PolicySet.from_objects(objects)


def bob_has_in(ns: str, *rules: dict[str, object]) -> PolicySet:
    return policy(cluster_role("bobs", *rules), binding(ns, "bobs", "bobs", user_subject("bob")))


def forbidden(call: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.code == 403
    assert caught.value.reason == "Forbidden"
    return caught.value


# --- roles ----------------------------------------------------------------------------------


def test_a_user_may_write_a_role_with_permissions_they_hold_in_its_namespace() -> None:
    p = bob_has_in("team-a", POD_RULES)
    escalation.check_role(
        BOB, role("team-a", "r", rule(["get"], [""], ["pods"])), "team-a", policy=p
    )


def test_granting_a_permission_not_held_is_forbidden_with_upstream_wording() -> None:
    p = bob_has_in("team-a", POD_RULES)
    error = forbidden(
        lambda: escalation.check_role(
            BOB, role("team-a", "r", rule(["get", "create"], [""], ["pods"])), "team-a", policy=p
        )
    )
    assert error.message == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "bob" '
        '(groups=["system:authenticated" "devs"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["create"]}'
    )
    assert error.details() == {"name": "r", "group": "rbac.authorization.k8s.io", "kind": "roles"}


def test_permissions_held_in_one_namespace_do_not_allow_roles_in_another_or_cluster_roles() -> None:
    p = bob_has_in("team-a", POD_RULES)
    forbidden(
        lambda: escalation.check_role(BOB, role("team-b", "r", POD_RULES), "team-b", policy=p)
    )
    error = forbidden(lambda: escalation.check_role(BOB, cluster_role("c", POD_RULES), policy=p))
    assert error.message.startswith('clusterroles.rbac.authorization.k8s.io "c" is forbidden: ')
    assert error.message.endswith('{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}')


def test_missing_permissions_are_listed_one_per_line_sorted() -> None:
    p = bob_has_in("team-a", POD_RULES)
    wanted = role(
        "team-a",
        "r",
        rule(["delete"], [""], ["pods", "secrets"]),
        rule(["get"], [""], ["configmaps"], names=["settings"]),
    )
    error = forbidden(lambda: escalation.check_role(BOB, wanted, "team-a", policy=p))
    assert error.message.split("\n")[1:] == [
        '{APIGroups:[""], Resources:["configmaps"], ResourceNames:["settings"], Verbs:["get"]}',
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}',
    ]


def test_the_escalate_verb_allows_granting_anything() -> None:
    p = bob_has_in("team-a", rule(["escalate"], ["rbac.authorization.k8s.io"], ["roles"]))
    escalation.check_role(BOB, role("team-a", "r", rule(["*"], ["*"], ["*"])), "team-a", policy=p)


def test_escalate_limited_by_name_applies_to_updates_of_that_role_only() -> None:
    p = bob_has_in(
        "team-a", rule(["escalate"], ["rbac.authorization.k8s.io"], ["roles"], names=["r"])
    )
    wanted = role("team-a", "r", rule(["*"], ["*"], ["*"]))
    # On create the request names no object, so a name-limited escalate does not apply.
    forbidden(lambda: escalation.check_role(BOB, wanted, "team-a", policy=p))
    escalation.check_role(BOB, wanted, "team-a", old=role("team-a", "r"), policy=p)
    other = role("team-a", "s", rule(["*"], ["*"], ["*"]))
    forbidden(
        lambda: escalation.check_role(BOB, other, "team-a", old=role("team-a", "s"), policy=p)
    )


def test_system_masters_may_write_any_role() -> None:
    root = user("root", "system:masters")
    escalation.check_role(root, cluster_role("all", rule(["*"], ["*"], ["*"])), policy=policy())


def test_updates_touching_only_owner_references_and_finalizers_need_no_permissions() -> None:
    old = role("team-a", "r", rule(["*"], ["*"], ["*"]))
    old["metadata"]["resourceVersion"] = "7"
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/keep"]
    new["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}
    ]
    escalation.check_role(BOB, new, "team-a", old=old, policy=policy())
    new["rules"] = []
    forbidden(
        lambda: escalation.check_role(
            BOB, {**new, "rules": [rule(["get"], [""], ["x"])]}, "team-a", old=old, policy=policy()
        )
    )


def test_aggregation_rules_need_full_authority() -> None:
    p = policy(
        cluster_role("bobs", rule(["get"], [""], ["pods"])),
        cluster_binding("bobs", "bobs", user_subject("bob")),
    )
    aggregated = cluster_role("agg")
    aggregated["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    error = forbidden(lambda: escalation.check_role(BOB, aggregated, policy=p))
    assert error.message == (
        'clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin '
        "privileges to use the aggregationRule"
    )
    # Removing an aggregation rule is guarded too.
    forbidden(lambda: escalation.check_role(BOB, cluster_role("agg"), old=aggregated, policy=p))
    admin = policy(
        cluster_role("all", rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"])),
        cluster_binding("all", "all", user_subject("bob")),
    )
    escalation.check_role(BOB, aggregated, policy=admin)


def test_resolution_errors_are_appended_to_the_message() -> None:
    p = policy(cluster_binding("broken", "gone", user_subject("bob")))
    error = forbidden(lambda: escalation.check_role(BOB, cluster_role("c", POD_RULES), policy=p))
    assert error.message.endswith(
        '; resolution errors: [clusterrole.rbac.authorization.k8s.io "gone" not found]'
    )


# --- bindings -------------------------------------------------------------------------------

VIEW = cluster_role("view", rule(["get", "list", "watch"], [""], ["pods", "configmaps"]))
EDIT = cluster_role("edit", rule(["*"], [""], ["pods", "configmaps"]))


def test_a_user_may_bind_a_role_whose_permissions_they_hold_at_the_binding_scope() -> None:
    p = policy(
        VIEW,
        cluster_role("bobs", rule(["get", "list", "watch"], [""], ["*"])),
        binding("team-a", "bobs", "bobs", user_subject("bob")),
    )
    escalation.check_binding(
        BOB, binding("team-a", "b", "view", user_subject("eve")), "team-a", policy=p
    )
    error = forbidden(
        lambda: escalation.check_binding(
            BOB, binding("team-b", "b", "view", user_subject("eve")), "team-b", policy=p
        )
    )
    assert error.message.startswith(
        'rolebindings.rbac.authorization.k8s.io "b" is forbidden: user "bob" '
        '(groups=["system:authenticated" "devs"]) is attempting to grant RBAC permissions not '
        "currently held:\n"
    )
    error = forbidden(
        lambda: escalation.check_binding(
            BOB, cluster_binding("b", "view", user_subject("eve")), policy=p
        )
    )
    assert error.message.startswith(
        'clusterrolebindings.rbac.authorization.k8s.io "b" is forbidden: '
    )


def test_bind_limited_by_resource_names_allows_binding_just_those_roles() -> None:
    p = policy(
        VIEW,
        EDIT,
        cluster_role(
            "binder",
            rule(["bind"], ["rbac.authorization.k8s.io"], ["clusterroles"], names=["view"]),
        ),
        binding("team-a", "binder", "binder", user_subject("bob")),
    )
    escalation.check_binding(
        BOB, binding("team-a", "b", "view", user_subject("eve")), "team-a", policy=p
    )
    forbidden(
        lambda: escalation.check_binding(
            BOB, binding("team-a", "b", "edit", user_subject("eve")), "team-a", policy=p
        )
    )
    # The bind grant is namespaced: it does not reach other namespaces.
    forbidden(
        lambda: escalation.check_binding(
            BOB, binding("team-b", "b", "view", user_subject("eve")), "team-b", policy=p
        )
    )


def test_binding_a_missing_role_is_not_found() -> None:
    with pytest.raises(ApiError) as caught:
        escalation.check_binding(
            BOB, binding("team-a", "b", "nope", user_subject("eve")), "team-a", policy=policy()
        )
    assert (caught.value.code, caught.value.message) == (
        404,
        'clusterroles.rbac.authorization.k8s.io "nope" not found',
    )
    with pytest.raises(ApiError) as caught:
        escalation.check_binding(
            BOB,
            binding("team-a", "b", "nope", user_subject("eve"), role_kind="Role"),
            "team-a",
            policy=policy(),
        )
    assert caught.value.message == 'roles.rbac.authorization.k8s.io "nope" not found'


def test_role_ref_is_immutable() -> None:
    old = binding("team-a", "b", "view", user_subject("eve"))
    escalation.check_role_ref_unchanged(old, copy.deepcopy(old))
    new = binding("team-a", "b", "edit", user_subject("eve"))
    with pytest.raises(ApiError) as caught:
        escalation.check_role_ref_unchanged(old, new)
    assert caught.value.code == 422
    assert caught.value.message == (
        'RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: '
        "cannot change roleRef"
    )
    assert caught.value.causes[0].field == "roleRef"


@pytest.mark.django_db
def test_checks_use_the_stored_policy_by_default() -> None:
    namespace("team-a")
    put(VIEW)
    put(cluster_role("bobs", rule(["get", "list", "watch"], [""], ["*"])))
    put(binding("team-a", "bobs", "bobs", user_subject("bob")))
    escalation.check_binding(BOB, binding("team-a", "b", "view", user_subject("eve")), "team-a")
    forbidden(
        lambda: escalation.check_binding(BOB, cluster_binding("b", "view", user_subject("eve")))
    )
