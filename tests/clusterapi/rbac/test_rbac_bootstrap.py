"""The default policy (bootstrap-policy.yaml) and its reconciliation through the store."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from clusterapi import store
from clusterapi.rbac import aggregation, authorizer, bootstrap
from clusterapi.rbac.attributes import Attributes
from clusterapi.rbac.policy import PolicySet
from clusterapi.rbac.rules import Rule
from tests.clusterapi.rbac.helpers import (
    binding,
    kind_of,
    namespace,
    put,
    request,
    stored,
    user,
    user_subject,
)

Obj = dict[str, Any]
LOOPS = (
    "scheduler",
    "deployment",
    "replicaset",
    "replication",
    "statefulset",
    "daemonset",
    "job",
    "cronjob",
    "namespace",
    "garbage-collector",
    "node-lifecycle",
    "serviceaccount",
    "disruption",
    "endpoint",
    "endpointslice",
    "clusterrole-aggregation",
)


def aggregated_defaults() -> list[Obj]:
    """The default ClusterRoles with aggregated rules filled in, as after the controller ran."""
    roles = bootstrap.cluster_roles()
    for _ in range(5):
        for role in roles:
            rules = aggregation.aggregate_rules(role, roles)
            if rules is not None:
                role["rules"] = [r.to_json() for r in rules]
    return roles


def default_policy(*extra: Obj) -> PolicySet:
    return PolicySet.from_objects(
        [*aggregated_defaults(), *bootstrap.cluster_role_bindings(), *extra]
    )


# --- the golden file ------------------------------------------------------------------------


def test_every_default_object_is_labelled_and_auto_updated() -> None:
    for obj in bootstrap.cluster_roles() + bootstrap.cluster_role_bindings():
        meta = obj["metadata"]
        assert meta["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults", meta["name"]
        assert meta["annotations"] == {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def test_every_default_binding_names_a_default_role() -> None:
    names = {r["metadata"]["name"] for r in bootstrap.cluster_roles()}
    for obj in bootstrap.cluster_role_bindings():
        assert obj["roleRef"]["name"] in names


def test_the_expected_roles_and_bindings_exist() -> None:
    roles = {r["metadata"]["name"]: r for r in bootstrap.cluster_roles()}
    for name in (
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:node",
        "system:kube-scheduler",
        "system:kube-controller-manager",
    ):
        assert name in roles
    assert roles["admin"]["aggregationRule"] == {
        "clusterRoleSelectors": [
            {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}
        ]
    }
    assert (
        roles["edit"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"]
        == "true"
    )
    assert (
        roles["view"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    )
    bindings = {b["metadata"]["name"]: b for b in bootstrap.cluster_role_bindings()}
    assert bindings["cluster-admin"]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}
    ]
    assert [s["name"] for s in bindings["system:public-info-viewer"]["subjects"]] == [
        "system:authenticated",
        "system:unauthenticated",
    ]
    assert "subjects" not in bindings["system:node"]


def test_every_control_loop_has_a_user_bound_to_its_role() -> None:
    assert set(LOOPS) <= set(bootstrap.CONTROLLER_USERS)
    assert bootstrap.CONTROLLER_USERS["scheduler"] == "system:kube-scheduler"
    assert bootstrap.CONTROLLER_USERS["deployment"] == "system:controller:deployment-controller"
    bound = {
        s["name"]: b["roleRef"]["name"]
        for b in bootstrap.cluster_role_bindings()
        for s in b.get("subjects", [])
    }
    for loop, username in bootstrap.CONTROLLER_USERS.items():
        assert username in bound, loop


@pytest.mark.parametrize(
    ("who", "verb", "resource", "group", "namespace_", "allowed"),
    [
        # view: reads, but not secrets or RBAC objects.
        ("viewer", "list", "pods", "", "team", True),
        ("viewer", "get", "pods/log", "", "team", True),
        ("viewer", "get", "secrets", "", "team", False),
        ("viewer", "list", "roles", "rbac.authorization.k8s.io", "team", False),
        ("viewer", "create", "pods", "", "team", False),
        ("viewer", "get", "deployments/scale", "apps", "team", True),
        # edit: writes workloads and reads secrets, no RBAC, no quotas.
        ("editor", "create", "deployments", "apps", "team", True),
        ("editor", "get", "secrets", "", "team", True),
        ("editor", "create", "pods/exec", "", "team", True),
        ("editor", "create", "rolebindings", "rbac.authorization.k8s.io", "team", False),
        ("editor", "update", "resourcequotas", "", "team", False),
        # admin: edit plus roles and bindings, but not quotas or the namespace itself.
        ("owner", "create", "rolebindings", "rbac.authorization.k8s.io", "team", True),
        ("owner", "create", "localsubjectaccessreviews", "authorization.k8s.io", "team", True),
        ("owner", "update", "resourcequotas", "", "team", False),
        ("owner", "delete", "namespaces", "", "team", False),
        ("owner", "create", "pods", "", "elsewhere", False),
        # Controllers act through their own users.
        ("system:controller:replicaset-controller", "create", "pods", "", "team", True),
        ("system:controller:replicaset-controller", "delete", "secrets", "", "team", False),
        ("system:kube-scheduler", "create", "pods/binding", "", "team", True),
        (
            "system:controller:namespace-controller",
            "deletecollection",
            "widgets",
            "example.com",
            "team",
            True,
        ),
        (
            "system:controller:clusterrole-aggregation-controller",
            "escalate",
            "clusterroles",
            "rbac.authorization.k8s.io",
            "",
            True,
        ),
    ],
)
def test_default_roles_grant_what_the_rbac_docs_describe(
    who: str, verb: str, resource: str, group: str, namespace_: str, allowed: bool
) -> None:
    p = default_policy(
        binding("team", "v", "view", user_subject("viewer")),
        binding("team", "e", "edit", user_subject("editor")),
        binding("team", "a", "admin", user_subject("owner")),
    )
    plural, _, sub = resource.partition("/")
    attrs = request(
        user(who, "system:authenticated"),
        verb,
        plural,
        group=group,
        namespace=namespace_,
        subresource=sub,
    )
    assert authorizer.authorize(attrs, policy=p).allowed is allowed


@pytest.mark.parametrize(
    ("groups", "path", "allowed"),
    [
        (("system:authenticated",), "/apis/apps/v1", True),
        (("system:authenticated",), "/openapi/v3", True),
        (("system:unauthenticated",), "/version", True),
        (("system:unauthenticated",), "/healthz", True),
        (("system:unauthenticated",), "/api", False),
        (("system:authenticated",), "/metrics", False),
        (("system:monitoring",), "/metrics", True),
    ],
)
def test_discovery_and_public_info(groups: tuple[str, ...], path: str, allowed: bool) -> None:
    attrs = Attributes.for_path(user("someone", *groups), "get", path)
    assert authorizer.authorize(attrs, policy=default_policy()).allowed is allowed


def test_every_authenticated_user_may_ask_what_they_can_do() -> None:
    attrs = request(
        user("x", "system:authenticated"),
        "create",
        "selfsubjectrulesreviews",
        group="authorization.k8s.io",
    )
    assert authorizer.authorize(attrs, policy=default_policy()).allowed


# --- reconciliation helpers -----------------------------------------------------------------


def test_reconciling_adds_missing_permissions_and_keeps_added_ones() -> None:
    expected = next(
        r for r in bootstrap.cluster_roles() if r["metadata"]["name"] == "system:basic-user"
    )
    existing = copy.deepcopy(expected)
    existing["rules"] = [
        {
            "verbs": ["create"],
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews"],
        },
        {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]},
    ]
    result = bootstrap.reconciled_cluster_role(existing, expected)
    assert result is not None
    assert result["rules"][:2] == existing["rules"]
    assert Rule.from_json(result["rules"][2]) == Rule.of(
        ["create"], groups=["authorization.k8s.io"], resources=["selfsubjectrulesreviews"]
    )
    assert bootstrap.reconciled_cluster_role(result, expected) is None


def test_reconciling_leaves_protected_objects_alone() -> None:
    expected = bootstrap.cluster_roles()[0]
    existing = copy.deepcopy(expected)
    existing["rules"] = []
    existing["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
    assert bootstrap.reconciled_cluster_role(existing, expected) is None


def test_reconciling_merges_labels_keeping_stored_values() -> None:
    expected = next(r for r in bootstrap.cluster_roles() if r["metadata"]["name"] == "edit")
    existing = copy.deepcopy(expected)
    existing["metadata"]["labels"] = {"team": "x", "kubernetes.io/bootstrapping": "custom"}
    result = bootstrap.reconciled_cluster_role(existing, expected)
    assert result is not None
    assert result["metadata"]["labels"] == {
        "kubernetes.io/bootstrapping": "custom",
        "rbac.authorization.k8s.io/aggregate-to-admin": "true",
        "team": "x",
    }


# --- against the store ----------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {}
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        for obj in store.list_objects(kind_of(kind)).objects():
            out[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    return out


@pytest.mark.django_db
def test_reconcile_creates_the_defaults_and_fills_the_aggregated_roles() -> None:
    bootstrap.reconcile()
    names = {o["metadata"]["name"] for o in store.list_objects(kind_of("ClusterRole")).objects()}
    assert {r["metadata"]["name"] for r in bootstrap.cluster_roles()} <= names
    view = stored("ClusterRole", "view")
    assert view["rules"], "aggregated by the time reconcile returns"
    admin_rules = {Rule.from_json(r) for r in stored("ClusterRole", "admin")["rules"]}
    assert {Rule.from_json(r) for r in view["rules"]} <= admin_rules
    namespace("team")
    put(binding("team", "v", "view", user_subject("viewer")))
    assert authorizer.authorize(request(user("viewer"), "list", "pods", namespace="team")).allowed


@pytest.mark.django_db
def test_reconcile_is_idempotent() -> None:
    bootstrap.reconcile()
    before = versions()
    bootstrap.reconcile()
    assert versions() == before


@pytest.mark.django_db
def test_reconcile_repairs_drift_without_removing_additions() -> None:
    bootstrap.reconcile()
    role_kind, binding_kind = kind_of("ClusterRole"), kind_of("ClusterRoleBinding")

    def drift_role(obj: Obj) -> Obj:
        obj["rules"] = [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]
        del obj["metadata"]["labels"]["kubernetes.io/bootstrapping"]
        return obj

    store.guaranteed_update(role_kind, "", "system:basic-user", drift_role)

    def drift_binding(obj: Obj) -> Obj:
        obj["subjects"] = [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "extra"}
        ]
        return obj

    store.guaranteed_update(binding_kind, "", "system:discovery", drift_binding)
    bootstrap.reconcile()
    role = stored("ClusterRole", "system:basic-user")
    assert role["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    assert role["rules"][0] == {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}
    assert len(role["rules"]) == 4
    subjects = [s["name"] for s in stored("ClusterRoleBinding", "system:discovery")["subjects"]]
    assert subjects == ["extra", "system:authenticated"]


@pytest.mark.django_db
def test_reconcile_skips_objects_marked_autoupdate_false() -> None:
    bootstrap.reconcile()

    def protect(obj: Obj) -> Obj:
        obj["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
        obj["rules"] = []
        return obj

    store.guaranteed_update(kind_of("ClusterRole"), "", "system:basic-user", protect)
    bootstrap.reconcile()
    assert stored("ClusterRole", "system:basic-user")["rules"] == []


@pytest.mark.django_db
def test_reconcile_recreates_a_binding_whose_role_ref_changed() -> None:
    bootstrap.reconcile()
    kind = kind_of("ClusterRoleBinding")
    store.delete(kind, "", "system:basic-user")
    put(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:basic-user"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Group",
                    "name": "system:authenticated",
                }
            ],
        }
    )
    bootstrap.reconcile()
    assert (
        stored("ClusterRoleBinding", "system:basic-user")["roleRef"]["name"] == "system:basic-user"
    )
