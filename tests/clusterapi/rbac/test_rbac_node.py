"""The Node authorizer and NodeRestriction (node_authorizer.go, noderestriction/admission.go)."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi.core.errors import ApiError
from clusterapi.rbac import authorizer, node
from clusterapi.rbac.attributes import Attributes
from clusterapi.rbac.node import MemoryGraph, pod_references
from clusterapi.rbac.policy import PolicySet
from tests.clusterapi.rbac.helpers import namespace, put, request, user

N1 = user("system:node:n1", "system:nodes", "system:authenticated")
N2 = user("system:node:n2", "system:nodes", "system:authenticated")
NS = "apps"
Obj = dict[str, Any]


def pod(name: str, node_name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def claim(name: str, volume: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"volumeName": volume},
    }


GRAPH = MemoryGraph(
    [
        pod(
            "web",
            "n1",
            volumes=[
                {"name": "tls", "secret": {"secretName": "tls"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {
                    "name": "proj",
                    "projected": {
                        "sources": [
                            {"configMap": {"name": "proj-cm"}},
                            {"secret": {"name": "proj-secret"}},
                        ]
                    },
                },
            ],
            imagePullSecrets=[{"name": "registry"}],
            serviceAccountName="web-sa",
        ),
        pod("other", "n2", volumes=[{"name": "s", "secret": {"secretName": "n2-only"}}]),
        pod("pending", "", volumes=[{"name": "s", "secret": {"secretName": "unscheduled"}}]),
        claim("data", "pv-data"),
    ]
)


def decide(attrs: Attributes) -> tuple[bool, str]:
    decision = node.authorize(attrs, GRAPH)
    return decision.allowed, decision.reason


def test_node_identity_needs_both_the_name_prefix_and_the_group() -> None:
    assert node.node_identity(N1) == ("n1", True)
    assert node.node_identity(user("system:node:n1")) == ("", False)
    assert node.node_identity(user("n1", "system:nodes")) == ("", False)
    assert node.node_identity(user("system:node:", "system:nodes")) == ("", True)
    assert decide(request(user("system:node:", "system:nodes"), "get", "pods", namespace=NS)) == (
        False,
        'unknown node for user "system:node:"',
    )


def test_other_users_get_no_opinion() -> None:
    assert decide(request(user("bob"), "get", "secrets", namespace=NS, name="tls")) == (False, "")


def test_pod_references_cover_volumes_env_pull_secrets_and_service_account() -> None:
    container = {
        "name": "c",
        "envFrom": [{"secretRef": {"name": "env-secret"}}, {"configMapRef": {"name": "env-cm"}}],
        "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "key-secret", "key": "k"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "key-cm", "key": "k"}}},
        ],
    }
    refs = pod_references(
        pod(
            "p",
            "n1",
            containers=[container],
            initContainers=[{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
            volumes=[
                {"name": "cm", "configMap": {"name": "vol-cm"}},
                {
                    "name": "csi",
                    "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}},
                },
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            ],
            imagePullSecrets=[{"name": "pull"}],
            serviceAccountName="sa",
        )
    )
    assert refs.secrets == {"env-secret", "key-secret", "init-secret", "csi-secret", "pull"}
    assert refs.configmaps == {"env-cm", "key-cm", "vol-cm"}
    assert refs.claims == {"p-scratch"}
    assert refs.service_account == "sa"


@pytest.mark.parametrize("name", ["tls", "registry", "proj-secret"])
def test_a_node_reads_secrets_its_pods_reference(name: str) -> None:
    assert decide(request(N1, "get", "secrets", namespace=NS, name=name)) == (True, "")
    assert decide(request(N1, "watch", "secrets", namespace=NS, name=name)) == (True, "")


def test_a_node_reads_no_other_secrets() -> None:
    refused = (False, "no relationship found between node 'n1' and this object")
    assert decide(request(N1, "get", "secrets", namespace=NS, name="n2-only")) == refused
    assert decide(request(N1, "get", "secrets", namespace=NS, name="unscheduled")) == refused
    assert decide(request(N1, "get", "secrets", namespace="elsewhere", name="tls")) == refused
    assert decide(request(N1, "list", "secrets", namespace=NS)) == (False, "No Object name found")
    assert decide(request(N1, "update", "secrets", namespace=NS, name="tls")) == (
        False,
        "can only read resources of this type",
    )
    assert decide(request(N2, "get", "secrets", namespace=NS, name="tls")) == (
        False,
        "no relationship found between node 'n2' and this object",
    )


def test_a_node_reads_configmaps_claims_and_volumes_of_its_pods() -> None:
    assert decide(request(N1, "get", "configmaps", namespace=NS, name="proj-cm"))[0]
    assert decide(request(N1, "get", "persistentvolumeclaims", namespace=NS, name="data"))[0]
    assert decide(request(N1, "get", "persistentvolumes", name="pv-data"))[0]
    assert not decide(request(N2, "get", "persistentvolumes", name="pv-data"))[0]
    assert decide(request(N1, "list", "persistentvolumeclaims", namespace=NS)) == (
        False,
        "can only get individual resources of this type",
    )


def test_a_node_creates_tokens_only_for_service_accounts_of_its_pods() -> None:
    token = request(
        N1, "create", "serviceaccounts", namespace=NS, name="web-sa", subresource="token"
    )
    assert decide(token) == (True, "")
    other = request(
        N2, "create", "serviceaccounts", namespace=NS, name="web-sa", subresource="token"
    )
    assert not decide(other)[0]
    assert decide(request(N1, "get", "serviceaccounts", namespace=NS, name="web-sa")) == (
        False,
        "can only create tokens for individual service accounts",
    )


def test_a_node_manages_its_own_node_object() -> None:
    assert decide(request(N1, "get", "nodes", name="n1"))[0]
    assert decide(request(N1, "list", "nodes", name="n1"))[0]
    assert decide(request(N1, "create", "nodes"))[0]
    assert decide(request(N1, "patch", "nodes", name="n1"))[0]
    assert decide(request(N1, "update", "nodes", name="n1", subresource="status"))[0]
    assert decide(request(N1, "get", "nodes", name="n2")) == (
        False,
        "node 'n1' cannot read 'n2', only its own Node object",
    )
    assert decide(request(N1, "list", "nodes")) == (
        False,
        "node 'n1' cannot read all nodes, only its own Node object",
    )
    assert decide(request(N1, "patch", "nodes", name="n2", subresource="status")) == (
        False,
        'node "n1" is not allowed to modify node "n2"',
    )
    assert decide(request(N1, "delete", "nodes", name="n1")) == (False, "")


def test_a_node_reads_all_pods_and_updates_the_status_of_its_own() -> None:
    assert decide(request(N1, "list", "pods"))[0]
    assert decide(request(N1, "get", "pods", namespace=NS, name="other"))[0]
    assert decide(request(N1, "patch", "pods", namespace=NS, name="web", subresource="status"))[0]
    assert decide(
        request(N1, "patch", "pods", namespace=NS, name="other", subresource="status")
    ) == (
        False,
        'node "n1" can only update pod status for pods with spec.nodeName set to itself',
    )
    assert decide(request(N1, "update", "pods", namespace=NS, name="web")) == (False, "")
    assert decide(request(N1, "delete", "pods", namespace=NS, name="web")) == (False, "")


def test_a_node_uses_only_its_own_lease() -> None:
    lease = "coordination.k8s.io"
    assert decide(
        request(N1, "update", "leases", group=lease, namespace="kube-node-lease", name="n1")
    )[0]
    assert decide(request(N1, "create", "leases", group=lease, namespace="kube-node-lease"))[0]
    assert decide(
        request(N1, "update", "leases", group=lease, namespace="kube-node-lease", name="n2")
    ) == (
        False,
        "can only access node lease with the same name as the requesting node",
    )
    assert decide(request(N1, "get", "leases", group=lease, namespace="default", name="n1")) == (
        False,
        'can only access leases in the "kube-node-lease" system namespace',
    )
    assert decide(request(N1, "list", "leases", group=lease, namespace="kube-node-lease")) == (
        False,
        "can only get, create, update, patch, or delete a node lease",
    )


def test_every_node_records_events_and_reads_services() -> None:
    assert decide(request(N1, "create", "events", namespace=NS))[0]
    assert decide(request(N1, "patch", "events", group="events.k8s.io", namespace=NS, name="e"))[0]
    assert decide(request(N1, "list", "services"))[0]
    assert decide(request(N1, "list", "deployments", group="apps")) == (False, "")
    assert decide(request(N1, "delete", "events", namespace=NS, name="e")) == (False, "")
    assert decide(Attributes.for_path(N1, "get", "/metrics")) == (False, "")


def test_the_chain_joins_node_and_rbac_reasons_and_rbac_can_still_grant() -> None:
    rbac = PolicySet.from_objects(
        [
            {
                "kind": "ClusterRole",
                "metadata": {"name": "secrets"},
                "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}],
            },
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "gone"},
                "roleRef": {"kind": "ClusterRole", "name": "gone"},
                "subjects": [{"kind": "Group", "name": "system:nodes"}],
            },
        ]
    )
    attrs = request(N1, "get", "secrets", namespace=NS, name="unrelated")
    decision = authorizer.authorize(attrs, policy=rbac, graph=GRAPH)
    assert not decision.allowed
    assert decision.reason == (
        "no relationship found between node 'n1' and this object\n"
        'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found'
    )
    granted = PolicySet.from_objects(
        [
            {
                "kind": "ClusterRole",
                "metadata": {"name": "secrets"},
                "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}],
            },
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "s"},
                "roleRef": {"kind": "ClusterRole", "name": "secrets"},
                "subjects": [{"kind": "User", "name": "system:node:n1"}],
            },
        ]
    )
    assert authorizer.authorize(attrs, policy=granted, graph=GRAPH).allowed


def test_who_can_describes_what_nodes_may_do() -> None:
    assert (
        node.describe_capability("get", "", "secrets")
        == "only secrets referenced by pods bound to the node"
    )
    assert node.describe_capability("create", "", "events") == "every node"
    assert node.describe_capability("delete", "", "secrets") is None


# --- NodeRestriction ------------------------------------------------------------------------


def admit(
    who: Any,
    operation: str,
    resource: str,
    name: str,
    obj: Obj | None,
    old: Obj | None = None,
    *,
    group: str = "",
    subresource: str = "",
    namespace_: str = "",
) -> None:
    node.admit(
        who, operation, group, resource, subresource, namespace_, name, obj, old, graph=GRAPH
    )


def refused(call: Any) -> str:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.code == 403
    return caught.value.message


def node_obj(name: str, **extra: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, **extra}, "spec": {}}


def test_node_restriction_lets_a_node_register_and_change_only_itself() -> None:
    admit(N1, "CREATE", "nodes", "", node_obj("n1", labels={"kubernetes.io/hostname": "n1"}))
    assert refused(lambda: admit(N1, "CREATE", "nodes", "", node_obj("n2"))) == (
        'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    )
    assert refused(
        lambda: admit(N1, "UPDATE", "nodes", "n2", node_obj("n2"), node_obj("n2"))
    ).endswith('node "n1" is not allowed to modify node "n2"')
    admit(user("bob"), "CREATE", "nodes", "", node_obj("n2"))


def test_node_restriction_guards_labels_and_taints() -> None:
    labelled = node_obj(
        "n1", labels={"node-restriction.kubernetes.io/pool": "x", "example.com/ok": "y"}
    )
    assert refused(lambda: admit(N1, "CREATE", "nodes", "", labelled)) == (
        'nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: '
        "node-restriction.kubernetes.io/pool"
    )
    old = node_obj("n1")
    tainted = node_obj("n1")
    tainted["spec"]["taints"] = [{"key": "k", "effect": "NoSchedule"}]
    assert refused(lambda: admit(N1, "UPDATE", "nodes", "n1", tainted, old)).endswith(
        'node "n1" is not allowed to modify taints'
    )
    relabelled = node_obj(
        "n1", labels={"kubernetes.io/role": "master", "node.kubernetes.io/pool": "a"}
    )
    assert refused(lambda: admit(N1, "UPDATE", "nodes", "n1", relabelled, old)).endswith(
        "is not allowed to modify labels: kubernetes.io/role"
    )


def test_node_restriction_on_pod_status_and_leases() -> None:
    web = pod("web", "n1")
    admit(N1, "UPDATE", "pods", "web", web, web, subresource="status", namespace_=NS)
    other = pod("other", "n2")
    assert refused(
        lambda: admit(N1, "UPDATE", "pods", "other", other, other, subresource="status")
    ) == (
        'pods "other" is forbidden: node "n1" can only update pod status for pods with '
        "spec.nodeName set to itself"
    )
    relabelled = pod("web", "n1")
    relabelled["metadata"]["labels"] = {"x": "y"}
    assert refused(
        lambda: admit(N1, "UPDATE", "pods", "web", relabelled, web, subresource="status")
    ).endswith('node "n1" cannot update labels through pod status')
    lease = {"metadata": {"name": "n2", "namespace": "kube-node-lease"}}
    assert refused(
        lambda: admit(
            N1,
            "CREATE",
            "leases",
            "",
            lease,
            group="coordination.k8s.io",
            namespace_="kube-node-lease",
        )
    ) == (
        'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same '
        "name as the requesting node"
    )
    own = {"metadata": {"name": "n1", "namespace": "kube-node-lease"}}
    admit(
        N1, "CREATE", "leases", "", own, group="coordination.k8s.io", namespace_="kube-node-lease"
    )


def test_node_restriction_binds_tokens_to_pods_on_the_node() -> None:
    def token(pod_name: str, uid: str = "") -> Obj:
        return {
            "spec": {
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod_name,
                    "uid": uid or f"uid-{pod_name}",
                }
            }
        }

    admit(
        N1, "CREATE", "serviceaccounts", "web-sa", token("web"), subresource="token", namespace_=NS
    )
    assert refused(
        lambda: admit(
            N1,
            "CREATE",
            "serviceaccounts",
            "web-sa",
            token("other"),
            subresource="token",
            namespace_=NS,
        )
    ).endswith("node requested token bound to a pod scheduled on a different node")
    assert refused(
        lambda: admit(
            N1,
            "CREATE",
            "serviceaccounts",
            "web-sa",
            {"spec": {}},
            subresource="token",
            namespace_=NS,
        )
    ).endswith("node requested token not bound to a pod")
    assert "does not match the UID in record" in refused(
        lambda: admit(
            N1,
            "CREATE",
            "serviceaccounts",
            "web-sa",
            token("web", "stale"),
            subresource="token",
            namespace_=NS,
        )
    )


# --- against the store ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_node_authorizer_reads_pods_from_the_store() -> None:
    namespace(NS)
    put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": NS}})
    stored = put(pod("web", "n1", volumes=[{"name": "tls", "secret": {"secretName": "tls"}}]))
    assert stored["spec"]["nodeName"] == "n1"
    attrs = request(N1, "get", "secrets", namespace=NS, name="tls")
    assert authorizer.authorize(attrs).allowed
    assert not authorizer.authorize(request(N2, "get", "secrets", namespace=NS, name="tls")).allowed
    assert authorizer.authorize(
        request(N1, "patch", "pods", namespace=NS, name="web", subresource="status")
    ).allowed
