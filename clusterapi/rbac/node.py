"""The Node authorizer and the NodeRestriction admission check: what a node agent may touch.

Role
----
Node agents authenticate as ``system:node:<node>`` in the group ``system:nodes``. A node must
be able to run the pods bound to it and nothing more, so that one compromised machine cannot
read the secrets of pods running elsewhere or steer workloads to itself. As upstream, this is
split in two:

* ``authorize(attrs)`` is consulted before RBAC (``clusterapi.rbac.authorizer``). For a node
  identity it allows:

  - its own Node: ``get``/``list``/``watch`` by name, ``update``/``patch`` of it and of its
    ``status``, and ``create`` (the name is only known from the body: ``admit`` checks it);
  - its own Lease in ``kube-node-lease`` (``get``, ``create``, ``update``, ``patch``,
    ``delete``);
  - ``get``/``list``/``watch`` of pods, and ``update``/``patch`` of the status of pods bound to
    it (``spec.nodeName``);
  - ``get`` (and by-name ``list``/``watch``) of the secrets and configmaps, ``get`` of the
    persistentvolumeclaims and of the persistentvolumes bound to them, and ``create`` of
    ``serviceaccounts/token`` for the service accounts, that pods bound to it reference
    (volumes, projected sources, ``env`` ``valueFrom``, ``envFrom``, ``imagePullSecrets``,
    ``serviceAccountName``) — anything else of those kinds is refused with upstream's
    ``no relationship found between node '<node>' and this object``;
  - writing events and reading services (what upstream's static node rules keep for every
    node: event recording and service environment variables), and reporting metric
    samples (``create`` of ``samples.metrics.berth.dev``; ``clusterapi.metrics.ingest`` then
    admits only the node's own).

  Everything else gets no opinion (so RBAC may still grant it, as upstream).
* ``admit(...)`` is NodeRestriction: for writes the authorizer cannot judge from the URL alone
  (a create names its object in the body; a status update must not relabel a pod) it checks
  the object and raises 403 with upstream's wording (``nodes "b" is forbidden: node "a" is
  not allowed to modify node "b"``).

Relationships are looked up through a ``NodeGraph``: ``StoreGraph`` reads the store on demand
(only for node identities, only for the kinds above), ``MemoryGraph`` serves tests. Reading
on demand rather than caching keeps a freshly bound pod's secrets readable at once.

Deliberate difference from upstream: ``update``/``patch`` of another node's Node (or status)
is refused here already, since its name is in the URL; upstream leaves that to admission.
The reason given is NodeRestriction's message, so clients see the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from clusterapi.admission.names import go_quote
from clusterapi.authn import User
from clusterapi.core.errors import ApiError
from clusterapi.rbac.attributes import Attributes
from clusterapi.rbac.policy import Decision, rule_allows
from clusterapi.rbac.rules import Rule

Obj = dict[str, Any]

NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

NO_OPINION = Decision(False, "")
ALLOW = Decision(True, "")

# Requests not subdivided by object: allowed to every node, as upstream's static node rules.
NODE_RULES: tuple[Rule, ...] = (
    Rule.of(["create", "update", "patch"], groups=["", "events.k8s.io"], resources=["events"]),
    Rule.of(["get", "list", "watch"], groups=[""], resources=["services"]),
    # Metric samples: the handler admits only the node's own samples (clusterapi.metrics).
    Rule.of(["create"], groups=["metrics.berth.dev"], resources=["samples"]),
)

# Labels a node may set on itself (k8s.io/api/core/v1 well-known labels the kubelet owns).
_KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "kubernetes.io/os",
        "kubernetes.io/arch",
    }
)
_KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
_NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"


def node_identity(user: User | None) -> tuple[str, bool]:
    """(node name, is a node): ``system:node:<name>`` in the group ``system:nodes``."""
    if user is None or not user.name.startswith(NODE_USER_PREFIX):
        return "", False
    if NODES_GROUP not in user.groups:
        return "", False
    return user.name[len(NODE_USER_PREFIX) :], True


# --- what pods reference --------------------------------------------------------------------


@dataclass
class PodReferences:
    """The objects one pod needs from the API to run."""

    secrets: set[str] = field(default_factory=set)
    configmaps: set[str] = field(default_factory=set)
    claims: set[str] = field(default_factory=set)
    service_account: str = ""


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _add(target: set[str], value: Any) -> None:
    if isinstance(value, str) and value:
        target.add(value)


# Volume sources naming a secret, and where the name sits in each.
_SECRET_VOLUME_PATHS: tuple[tuple[str, ...], ...] = (
    ("secret", "secretName"),
    ("azureFile", "secretName"),
    ("cephfs", "secretRef", "name"),
    ("cinder", "secretRef", "name"),
    ("flexVolume", "secretRef", "name"),
    ("iscsi", "secretRef", "name"),
    ("rbd", "secretRef", "name"),
    ("scaleIO", "secretRef", "name"),
    ("storageos", "secretRef", "name"),
    ("csi", "nodePublishSecretRef", "name"),
)


def pod_references(pod: Mapping[str, Any]) -> PodReferences:
    """Secrets, configmaps, claims and the service account a pod references."""
    refs = PodReferences()
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return refs
    for pull_secret in _dicts(spec.get("imagePullSecrets")):
        _add(refs.secrets, pull_secret.get("name"))
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for container in _dicts(spec.get(group)):
            for source in _dicts(container.get("envFrom")):
                _add(refs.secrets, _get(source, "secretRef", "name"))
                _add(refs.configmaps, _get(source, "configMapRef", "name"))
            for env in _dicts(container.get("env")):
                _add(refs.secrets, _get(env, "valueFrom", "secretKeyRef", "name"))
                _add(refs.configmaps, _get(env, "valueFrom", "configMapKeyRef", "name"))
    pod_name = _get(pod, "metadata", "name")
    for volume in _dicts(spec.get("volumes")):
        for path in _SECRET_VOLUME_PATHS:
            _add(refs.secrets, _get(volume, *path))
        _add(refs.configmaps, _get(volume, "configMap", "name"))
        for source in _dicts(_get(volume, "projected", "sources")):
            _add(refs.secrets, _get(source, "secret", "name"))
            _add(refs.configmaps, _get(source, "configMap", "name"))
        _add(refs.claims, _get(volume, "persistentVolumeClaim", "claimName"))
        # A generic ephemeral volume's claim is named <pod>-<volume>.
        if isinstance(volume.get("ephemeral"), Mapping) and isinstance(pod_name, str):
            _add(refs.claims, f"{pod_name}-{volume.get('name', '')}")
    account = spec.get("serviceAccountName")
    refs.service_account = account if isinstance(account, str) else ""
    return refs


# --- relationship lookups -------------------------------------------------------------------


class NodeGraph(Protocol):
    """Where the Node authorizer looks up pods and claims."""

    def pods_on_node(self, node: str, namespace: str | None) -> Iterable[Mapping[str, Any]]:
        """Pods bound to ``node`` (in ``namespace``, or in all namespaces for None)."""
        ...

    def get(self, resource: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """One core/v1 object by plural resource name, or None."""
        ...


class StoreGraph:
    """A ``NodeGraph`` over the store, read on demand."""

    def pods_on_node(self, node: str, namespace: str | None) -> Iterable[Mapping[str, Any]]:
        from clusterapi import store
        from clusterapi.resources import by_resource

        kind = by_resource("", "v1", "pods")
        if kind is None:
            return []

        def bound(obj: Obj) -> bool:
            return _get(obj, "spec", "nodeName") == node

        return store.list_objects(kind, namespace or None, match=bound).objects()

    def get(self, resource: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        from clusterapi import store
        from clusterapi.resources import by_resource

        kind = by_resource("", "v1", resource)
        if kind is None:
            return None
        try:
            return store.get(kind, namespace, name)
        except ApiError:
            return None


class MemoryGraph:
    """A ``NodeGraph`` over a list of objects (tests, previews)."""

    def __init__(self, objects: Iterable[Mapping[str, Any]] = ()) -> None:
        self._objects = list(objects)

    def _resource(self, obj: Mapping[str, Any]) -> str:
        return str(obj.get("kind", "")).lower() + "s"

    def pods_on_node(self, node: str, namespace: str | None) -> Iterable[Mapping[str, Any]]:
        return [
            obj
            for obj in self._objects
            if obj.get("kind") == "Pod"
            and _get(obj, "spec", "nodeName") == node
            and (namespace is None or _get(obj, "metadata", "namespace") == namespace)
        ]

    def get(self, resource: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        for obj in self._objects:
            if (
                self._resource(obj) == resource
                and _get(obj, "metadata", "name") == name
                and (_get(obj, "metadata", "namespace") or "") == namespace
            ):
                return obj
        return None


def _related(node: str, kind: str, namespace: str, name: str, graph: NodeGraph) -> bool:
    """Whether a pod bound to ``node`` leads to the object (upstream's graph path)."""
    if kind == "persistentvolumes":
        for pod in graph.pods_on_node(node, None):
            pod_namespace = str(_get(pod, "metadata", "namespace") or "")
            for claim_name in pod_references(pod).claims:
                claim = graph.get("persistentvolumeclaims", pod_namespace, claim_name)
                if claim is not None and _get(claim, "spec", "volumeName") == name:
                    return True
        return False
    for pod in graph.pods_on_node(node, namespace):
        refs = pod_references(pod)
        if (
            (kind == "secrets" and name in refs.secrets)
            or (kind == "configmaps" and name in refs.configmaps)
            or (kind == "persistentvolumeclaims" and name in refs.claims)
            or (kind == "serviceaccounts" and name == refs.service_account)
        ):
            return True
    return False


# --- the authorizer -------------------------------------------------------------------------


def _no_relationship(node: str) -> Decision:
    return Decision(False, f"no relationship found between node '{node}' and this object")


def _check_related(node: str, attrs: Attributes, graph: NodeGraph) -> Decision:
    if not attrs.name:
        return Decision(False, "No Object name found")
    if _related(node, attrs.resource, attrs.namespace, attrs.name, graph):
        return ALLOW
    return _no_relationship(node)


def _read_namespaced(node: str, attrs: Attributes, graph: NodeGraph) -> Decision:
    # Secrets and configmaps: get, or list/watch pinned to one name by a field selector.
    if attrs.verb not in ("get", "list", "watch"):
        return Decision(False, "can only read resources of this type")
    if attrs.subresource:
        return Decision(False, "cannot read subresource")
    if not attrs.namespace:
        return Decision(False, "can only read namespaced object of this type")
    return _check_related(node, attrs, graph)


def _get_only(node: str, attrs: Attributes, graph: NodeGraph) -> Decision:
    if attrs.verb != "get":
        return Decision(False, "can only get individual resources of this type")
    if attrs.subresource:
        return Decision(False, "cannot get subresource")
    return _check_related(node, attrs, graph)


def _create_token(node: str, attrs: Attributes, graph: NodeGraph) -> Decision:
    if attrs.verb != "create" or not attrs.name:
        return Decision(False, "can only create tokens for individual service accounts")
    if attrs.subresource != "token":
        return Decision(False, "can only create token subresource of serviceaccount")
    if _related(node, "serviceaccounts", attrs.namespace, attrs.name, graph):
        return ALLOW
    return _no_relationship(node)


def _lease(node: str, attrs: Attributes) -> Decision:
    if attrs.verb not in ("get", "create", "update", "patch", "delete"):
        return Decision(False, "can only get, create, update, patch, or delete a node lease")
    if attrs.namespace != NODE_LEASE_NAMESPACE:
        return Decision(
            False,
            f"can only access leases in the {go_quote(NODE_LEASE_NAMESPACE)} system namespace",
        )
    # On create the name is in the body, not the URL: admit() checks it.
    if attrs.verb != "create" and attrs.name != node:
        return Decision(
            False, "can only access node lease with the same name as the requesting node"
        )
    return ALLOW


def _modify_other_node(node: str, name: str) -> Decision:
    return Decision(False, f"node {go_quote(node)} is not allowed to modify node {go_quote(name)}")


def _node_object(node: str, attrs: Attributes) -> Decision:
    if attrs.subresource == "":
        if attrs.verb == "create":
            return ALLOW
        if attrs.verb in ("update", "patch"):
            return ALLOW if attrs.name == node else _modify_other_node(node, attrs.name)
        if attrs.verb in ("get", "list", "watch"):
            # By name only, so an agent can read its Node before registering it.
            if attrs.name == node:
                return ALLOW
            if not attrs.name:
                return Decision(
                    False, f"node '{node}' cannot read all nodes, only its own Node object"
                )
            return Decision(
                False, f"node '{node}' cannot read '{attrs.name}', only its own Node object"
            )
    elif attrs.subresource == "status" and attrs.verb in ("update", "patch"):
        return ALLOW if attrs.name == node else _modify_other_node(node, attrs.name)
    return NO_OPINION


def _not_own_pod_status(node: str) -> str:
    # (Plain English, not SQL: the words "update ... set" only look like it to the linter.)
    return (
        f"node {go_quote(node)} can only update pod status for pods with spec.nodeName "  # noqa: S608
        "set to itself"
    )


def _pod(node: str, attrs: Attributes, graph: NodeGraph) -> Decision:
    if attrs.subresource == "" and attrs.verb in ("get", "list", "watch"):
        return ALLOW
    if attrs.subresource == "status" and attrs.verb in ("update", "patch"):
        pod = graph.get("pods", attrs.namespace, attrs.name) if attrs.name else None
        if pod is not None and _get(pod, "spec", "nodeName") == node:
            return ALLOW
        return Decision(False, _not_own_pod_status(node))
    return NO_OPINION


def authorize(attrs: Attributes, graph: NodeGraph | None = None) -> Decision:
    """The Node authorizer's decision: allow, or no opinion (with a reason when it has one)."""
    node, is_node = node_identity(attrs.user)
    if not is_node:
        return NO_OPINION
    if not node:
        return Decision(False, f"unknown node for user {go_quote(attrs.user.name)}")
    if attrs.resource_request:
        lookups = graph if graph is not None else StoreGraph()
        group, resource = attrs.api_group, attrs.resource
        if group == "":
            if resource in ("secrets", "configmaps"):
                return _read_namespaced(node, attrs, lookups)
            if resource in ("persistentvolumeclaims", "persistentvolumes"):
                return _get_only(node, attrs, lookups)
            if resource == "serviceaccounts":
                return _create_token(node, attrs, lookups)
            if resource == "nodes":
                return _node_object(node, attrs)
            if resource == "pods":
                return _pod(node, attrs, lookups)
        elif group == "coordination.k8s.io" and resource == "leases":
            return _lease(node, attrs)
    if any(rule_allows(rule, attrs) for rule in NODE_RULES):
        return ALLOW
    return NO_OPINION


_READ = frozenset({"get", "list", "watch"})
_LEASE_VERBS = frozenset({"get", "create", "update", "patch", "delete"})
_CAPABILITIES: tuple[tuple[str, str, str, frozenset[str], str], ...] = (
    ("", "secrets", "", _READ, "only secrets referenced by pods bound to the node"),
    ("", "configmaps", "", _READ, "only configmaps referenced by pods bound to the node"),
    (
        "",
        "persistentvolumeclaims",
        "",
        frozenset({"get"}),
        "only claims used by pods bound to the node",
    ),
    (
        "",
        "persistentvolumes",
        "",
        frozenset({"get"}),
        "only volumes bound to claims of pods bound to the node",
    ),
    (
        "",
        "serviceaccounts",
        "token",
        frozenset({"create"}),
        "only tokens of service accounts of pods bound to the node",
    ),
    ("", "nodes", "", _READ | {"create", "update", "patch"}, "only the node's own Node object"),
    ("", "nodes", "status", frozenset({"update", "patch"}), "only the node's own Node object"),
    ("", "pods", "", _READ, "all pods (read only)"),
    (
        "",
        "pods",
        "status",
        frozenset({"update", "patch"}),
        "only the status of pods bound to the node",
    ),
    (
        "coordination.k8s.io",
        "leases",
        "",
        _LEASE_VERBS,
        f"only the node's own Lease in {NODE_LEASE_NAMESPACE}",
    ),
)


def describe_capability(
    verb: str, api_group: str, resource: str, subresource: str = ""
) -> str | None:
    """What the Node authorizer could allow a node for this request, in words ("who can")."""
    for group, plural, sub, verbs, description in _CAPABILITIES:
        if (api_group, resource, subresource) == (group, plural, sub) and verb in verbs:
            return description
    probe = Attributes.for_resource(
        User(""), verb, resource, group=api_group, subresource=subresource
    )
    if any(rule_allows(rule, probe) for rule in NODE_RULES):
        return "every node"
    return None


# --- NodeRestriction admission --------------------------------------------------------------


def _forbidden(group: str, resource: str, name: str, message: str) -> ApiError:
    """``admission.NewForbidden``: ``<resource> "<name>" is forbidden: <message>``."""
    qualified = f"{resource}.{group}" if group else resource
    prefix = f"{qualified} {go_quote(name)}" if name else qualified
    return ApiError(
        403, "Forbidden", f"{prefix} is forbidden: {message}", name=name, group=group, kind=resource
    )


def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _is_kubelet_label(key: str) -> bool:
    if key in _KUBELET_LABELS:
        return True
    namespace = _label_namespace(key)
    return any(namespace == ns or namespace.endswith("." + ns) for ns in _KUBELET_LABEL_NAMESPACES)


def _forbidden_labels(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    modified = {
        k for k in set(new) | set(old) if new.get(k) != old.get(k) or (k in new) != (k in old)
    }
    out: set[str] = set()
    for key in modified:
        namespace = _label_namespace(key)
        if namespace == _NODE_RESTRICTION_LABEL_NAMESPACE or namespace.endswith(
            "." + _NODE_RESTRICTION_LABEL_NAMESPACE
        ):
            out.add(key)
        kubernetes = namespace in ("kubernetes.io", "k8s.io") or namespace.endswith(
            (".kubernetes.io", ".k8s.io")
        )
        if kubernetes and not _is_kubelet_label(key):
            out.add(key)
    return sorted(out)


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    labels = _get(obj, "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def _admit_node(node: str, operation: str, name: str, obj: Obj | None, old: Obj | None) -> None:
    requested = name or str(_get(obj, "metadata", "name") or "")
    if requested != node:
        raise _forbidden(
            "",
            "nodes",
            requested,
            f"node {go_quote(node)} is not allowed to modify node {go_quote(requested)}",
        )
    if operation == "CREATE" and obj is not None:
        if _get(obj, "spec", "configSource") is not None:
            raise _forbidden(
                "",
                "nodes",
                requested,
                f"node {go_quote(node)} is not allowed to create pods with a non-nil configSource",
            )
        bad = _forbidden_labels(_labels(obj), {})
        if bad:
            raise _forbidden(
                "",
                "nodes",
                requested,
                f"node {go_quote(node)} is not allowed to set the following labels: "
                + ", ".join(bad),
            )
    if operation == "UPDATE" and obj is not None and old is not None:
        config = _get(obj, "spec", "configSource")
        if config is not None and config != _get(old, "spec", "configSource"):
            raise _forbidden(
                "",
                "nodes",
                requested,
                f"node {go_quote(node)} is not allowed to update configSource to a new non-nil "
                "configSource",
            )
        if (_get(obj, "spec", "taints") or []) != (_get(old, "spec", "taints") or []):
            raise _forbidden(
                "", "nodes", requested, f"node {go_quote(node)} is not allowed to modify taints"
            )
        bad = _forbidden_labels(_labels(obj), _labels(old))
        if bad:
            raise _forbidden(
                "", "nodes", requested, f"is not allowed to modify labels: {', '.join(bad)}"
            )


def _admit_pod(
    node: str, operation: str, subresource: str, name: str, obj: Obj | None, old: Obj | None
) -> None:
    if subresource == "status":
        if operation != "UPDATE":
            raise _forbidden("", "pods", name, f"unexpected operation {go_quote(operation)}")
        if _get(old, "spec", "nodeName") != node:
            raise _forbidden(
                "",
                "pods",
                name,
                _not_own_pod_status(node),
            )
        if dict(_labels(obj)) != dict(_labels(old)):
            raise _forbidden(
                "", "pods", name, f"node {go_quote(node)} cannot update labels through pod status"
            )
        return
    if subresource == "":
        if operation == "DELETE":
            if _get(old, "spec", "nodeName") != node:
                raise _forbidden(
                    "",
                    "pods",
                    name,
                    f"node {go_quote(node)} can only delete pods with spec.nodeName set to itself",
                )
            return
        if operation == "CREATE":
            annotations = _get(obj, "metadata", "annotations")
            if not isinstance(annotations, Mapping) or MIRROR_POD_ANNOTATION not in annotations:
                raise _forbidden(
                    "",
                    "pods",
                    name or str(_get(obj, "metadata", "name") or ""),
                    f"pod does not have {go_quote(MIRROR_POD_ANNOTATION)} annotation, node "
                    f"{go_quote(node)} can only create mirror pods",
                )
            return
        raise _forbidden(
            "",
            "pods",
            name,
            f"unexpected operation {go_quote(operation)}, node {go_quote(node)} can only create "
            "and delete mirror pods",
        )
    if subresource != "eviction":
        raise _forbidden(
            "",
            "pods",
            name,
            f"unexpected pod subresource {go_quote(subresource)}, only 'status' and 'eviction' "
            "are allowed",
        )


def _admit_lease(node: str, operation: str, namespace: str, name: str, obj: Obj | None) -> None:
    shown = name or str(_get(obj, "metadata", "name") or "")
    if namespace != NODE_LEASE_NAMESPACE:
        raise _forbidden(
            "coordination.k8s.io",
            "leases",
            shown,
            f"can only access leases in the {go_quote(NODE_LEASE_NAMESPACE)} system namespace",
        )
    requested = str(_get(obj, "metadata", "name") or "") if operation == "CREATE" else name
    if requested != node:
        raise _forbidden(
            "coordination.k8s.io",
            "leases",
            shown,
            "can only access node lease with the same name as the requesting node",
        )


def _admit_token(node: str, namespace: str, name: str, obj: Obj | None, graph: NodeGraph) -> None:
    ref = _get(obj, "spec", "boundObjectRef")
    if (
        not isinstance(ref, Mapping)
        or ref.get("apiVersion") != "v1"
        or ref.get("kind") != "Pod"
        or not ref.get("name")
    ):
        raise _forbidden("", "serviceaccounts", name, "node requested token not bound to a pod")
    if not ref.get("uid"):
        raise _forbidden(
            "", "serviceaccounts", name, "node requested token with a pod binding without a uid"
        )
    pod = graph.get("pods", namespace, str(ref["name"]))
    if pod is None:
        raise ApiError(
            404,
            "NotFound",
            f"pods {go_quote(str(ref['name']))} not found",
            name=str(ref["name"]),
            kind="pods",
        )
    if ref.get("uid") != _get(pod, "metadata", "uid"):
        raise _forbidden(
            "",
            "serviceaccounts",
            name,
            f"the UID in the bound object reference ({ref.get('uid')}) does not match the UID in "
            "record. The object might have been deleted and then recreated",
        )
    if _get(pod, "spec", "nodeName") != node:
        raise _forbidden(
            "",
            "serviceaccounts",
            name,
            "node requested token bound to a pod scheduled on a different node",
        )


def admit(
    user: User,
    operation: str,
    group: str,
    resource: str,
    subresource: str,
    namespace: str,
    name: str,
    obj: Obj | None,
    old: Obj | None,
    *,
    graph: NodeGraph | None = None,
) -> None:
    """NodeRestriction: raise 403 when a node writes what is not its own.

    ``operation`` is ``CREATE``, ``UPDATE`` (also for patches) or ``DELETE``; ``obj`` is the
    object as it would be stored, ``old`` the stored one. Requests from other users pass.
    """
    node, is_node = node_identity(user)
    if not is_node:
        return
    if not node:
        raise _forbidden(
            group, resource, name, f"could not determine node from user {go_quote(user.name)}"
        )
    if group == "":
        if resource == "nodes":
            _admit_node(node, operation, name, obj, old)
        elif resource == "pods":
            _admit_pod(node, operation, subresource, name, obj, old)
        elif resource == "persistentvolumeclaims" and subresource != "status":
            raise _forbidden("", resource, name, "may only update PVC status")
        elif resource == "serviceaccounts" and operation == "CREATE" and subresource == "token":
            _admit_token(node, namespace, name, obj, graph if graph is not None else StoreGraph())
    elif group == "coordination.k8s.io" and resource == "leases":
        _admit_lease(node, operation, namespace, name, obj)
