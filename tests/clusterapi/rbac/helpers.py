"""Builders for RBAC test objects, and store helpers for the database-backed tests."""

from __future__ import annotations

from typing import Any

from clusterapi import store
from clusterapi.authn import User
from clusterapi.rbac import authorizer
from clusterapi.rbac.attributes import Attributes
from clusterapi.resources import by_kind

RBAC = "rbac.authorization.k8s.io"
Obj = dict[str, Any]


def rule(
    verbs: list[str],
    groups: list[str] | None = None,
    resources: list[str] | None = None,
    names: list[str] | None = None,
    urls: list[str] | None = None,
) -> Obj:
    out: Obj = {"verbs": verbs}
    if groups is not None:
        out["apiGroups"] = groups
    if resources is not None:
        out["resources"] = resources
    if names is not None:
        out["resourceNames"] = names
    if urls is not None:
        out["nonResourceURLs"] = urls
    return out


def cluster_role(name: str, *rules: Obj, labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": meta,
        "rules": list(rules),
    }


def role(namespace: str, name: str, *rules: Obj) -> Obj:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": list(rules),
    }


def user_subject(name: str) -> Obj:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


def group_subject(name: str) -> Obj:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


def sa_subject(name: str, namespace: str | None = None) -> Obj:
    out: Obj = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        out["namespace"] = namespace
    return out


def cluster_binding(
    name: str, role_name: str, *subjects: Obj, role_kind: str = "ClusterRole"
) -> Obj:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def binding(
    namespace: str, name: str, role_name: str, *subjects: Obj, role_kind: str = "ClusterRole"
) -> Obj:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def user(name: str, *groups: str) -> User:
    return User(name=name, groups=tuple(groups))


def request(
    who: User,
    verb: str,
    resource: str,
    *,
    namespace: str = "",
    group: str = "",
    name: str = "",
    subresource: str = "",
) -> Attributes:
    return Attributes.for_resource(
        who,
        verb,
        resource,
        group=group,
        version="v1",
        namespace=namespace,
        name=name,
        subresource=subresource,
    )


# --- the store ------------------------------------------------------------------------------


def kind_of(kind: str) -> Any:
    core = (
        "Namespace",
        "Pod",
        "Secret",
        "Node",
        "ConfigMap",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "PersistentVolume",
    )
    found = by_kind("v1" if kind in core else f"{RBAC}/v1", kind)
    assert found is not None
    return found


def put(obj: Obj) -> Obj:
    """Create an object through the store and tell the authorizer, as the on-commit hook will."""
    kind = kind_of(obj["kind"])
    result = store.create(kind, obj, namespace=obj.get("metadata", {}).get("namespace", "")).obj
    authorizer.invalidate()
    return result


def namespace(name: str) -> Obj:
    return put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def stored(kind: str, name: str, namespace: str = "") -> Obj:
    return store.get(kind_of(kind), namespace, name)
