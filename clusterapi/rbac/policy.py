"""The RBAC policy as an immutable, indexed snapshot: the authorizer's pure evaluation core.

Role
----
``PolicySet`` holds the Roles, ClusterRoles, RoleBindings and ClusterRoleBindings of one
moment, indexed by the subjects they name, and answers the questions the rest of
``clusterapi.rbac`` asks:

* ``visit(user, namespace)`` yields every rule that applies to a user in a namespace, with the
  binding it came through, and every error met resolving role references (a binding to a
  missing role), in upstream's order: ClusterRoleBindings first, then, for a namespaced
  request, the RoleBindings of that namespace. This is ``DefaultRuleResolver.VisitRulesFor``.
* ``evaluate(attrs)`` is the RBAC authorizer: allowed as soon as one rule allows, with
  upstream's reason (``RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to Group
  "z"``); otherwise no opinion, with the resolution errors as the reason.
* ``rules_for(user, namespace)`` lists the rules (SelfSubjectRulesReview, escalation checks).
* ``grants(...)`` walks the bindings the other way round: which subjects a request is
  allowed for, and through which binding and role ("who can").

A ``PolicySet`` never touches the database: ``clusterapi.rbac.authorizer`` builds one from the
store and rebuilds it when RBAC objects change, and tests build them from plain lists. The
semantics are those of ``pkg/registry/rbac/validation/rule.go``:

* a RoleBinding's rules apply only in its own namespace, whether it references a Role (of
  that namespace) or a ClusterRole; ClusterRoleBindings apply everywhere, and only they
  reach non-resource URLs (a non-resource request has no namespace, so no RoleBinding is
  consulted);
* a ClusterRoleBinding whose roleRef names a Role resolves nothing (and reports an error);
* subjects: ``User`` by name, ``Group`` by membership, ``ServiceAccount`` by the user name
  ``system:serviceaccount:<namespace>:<name>``, its namespace defaulting to the
  RoleBinding's; a ServiceAccount subject without a namespace in a ClusterRoleBinding, and
  any other kind, match no one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clusterapi.admission.names import go_quote
from clusterapi.authn import User
from clusterapi.rbac import rules as rbac_rules
from clusterapi.rbac.attributes import Attributes
from clusterapi.rbac.rules import Rule

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
CLUSTER_ROLE = "ClusterRole"
ROLE = "Role"
CLUSTER_ROLE_BINDING = "ClusterRoleBinding"
ROLE_BINDING = "RoleBinding"
USER = "User"
GROUP = "Group"
SERVICE_ACCOUNT = "ServiceAccount"


def service_account_username(namespace: str, name: str) -> str:
    """The user name a service account authenticates as."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Subject:
    """A binding's subject: ``User``, ``Group`` or ``ServiceAccount``."""

    kind: str
    name: str
    namespace: str = ""
    api_group: str = ""

    @classmethod
    def from_json(cls, data: Any) -> Subject:
        if not isinstance(data, Mapping):
            return cls("", "")
        return cls(
            kind=_text(data.get("kind")),
            name=_text(data.get("name")),
            namespace=_text(data.get("namespace")),
            api_group=_text(data.get("apiGroup")),
        )

    def username(self, binding_namespace: str) -> str | None:
        """The user name this subject stands for (Users and ServiceAccounts), if any."""
        if self.kind == USER:
            return self.name
        if self.kind == SERVICE_ACCOUNT:
            # The subject's own namespace wins; a RoleBinding lends its own to unqualified
            # service accounts, a ClusterRoleBinding has none to lend.
            namespace = self.namespace or binding_namespace
            return service_account_username(namespace, self.name) if namespace else None
        return None

    def applies_to(self, user: User, binding_namespace: str) -> bool:
        if self.kind == GROUP:
            return self.name in user.groups
        username = self.username(binding_namespace)
        return username is not None and username == user.name

    def describe(self, binding_namespace: str) -> str:
        """How upstream names the subject in an "allowed by" reason."""
        if self.kind == SERVICE_ACCOUNT:
            return (
                f"{self.kind} {go_quote(self.name + '/' + (self.namespace or binding_namespace))}"
            )
        return f"{self.kind} {go_quote(self.name)}"


@dataclass(frozen=True)
class RoleRef:
    api_group: str
    kind: str
    name: str

    @classmethod
    def from_json(cls, data: Any) -> RoleRef:
        if not isinstance(data, Mapping):
            return cls("", "", "")
        return cls(_text(data.get("apiGroup")), _text(data.get("kind")), _text(data.get("name")))


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (``namespace`` set) or ClusterRoleBinding (``namespace`` empty)."""

    kind: str
    name: str
    role_ref: RoleRef
    subjects: tuple[Subject, ...] = ()
    namespace: str = ""

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Binding:
        meta = obj.get("metadata") or {}
        kind = _text(obj.get("kind"))
        if kind not in (ROLE_BINDING, CLUSTER_ROLE_BINDING):
            kind = ROLE_BINDING if meta.get("namespace") else CLUSTER_ROLE_BINDING
        subjects = obj.get("subjects")
        return cls(
            kind=kind,
            name=_text(meta.get("name")),
            namespace=_text(meta.get("namespace")) if kind == ROLE_BINDING else "",
            role_ref=RoleRef.from_json(obj.get("roleRef")),
            subjects=tuple(Subject.from_json(s) for s in subjects)
            if isinstance(subjects, list)
            else (),
        )

    def first_subject_for(self, user: User) -> Subject | None:
        """The first subject that names ``user`` (upstream's ``appliesTo``)."""
        for subject in self.subjects:
            if subject.applies_to(user, self.namespace):
                return subject
        return None

    def describe(self, subject: Subject) -> str:
        """The source of a rule, as upstream's "allowed by" reason names it."""
        if self.kind == ROLE_BINDING:
            label = f"RoleBinding {go_quote(self.name + '/' + self.namespace)}"
        else:
            label = f"ClusterRoleBinding {go_quote(self.name)}"
        return (
            f"{label} of {self.role_ref.kind} {go_quote(self.role_ref.name)} to "
            f"{subject.describe(self.namespace)}"
        )


@dataclass(frozen=True)
class RoleDef:
    """A Role (``namespace`` set) or ClusterRole, reduced to what evaluation needs."""

    kind: str
    name: str
    rules: tuple[Rule, ...] = ()
    namespace: str = ""

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RoleDef:
        meta = obj.get("metadata") or {}
        kind = _text(obj.get("kind"))
        if kind not in (ROLE, CLUSTER_ROLE):
            kind = ROLE if meta.get("namespace") else CLUSTER_ROLE
        return cls(
            kind=kind,
            name=_text(meta.get("name")),
            namespace=_text(meta.get("namespace")) if kind == ROLE else "",
            rules=rbac_rules.rules_from_json(obj.get("rules")),
        )


@dataclass(frozen=True)
class Decision:
    """An authorizer's answer. ``denied`` is an explicit deny (RBAC never gives one)."""

    allowed: bool
    reason: str = ""
    denied: bool = False


@dataclass(frozen=True)
class Visit:
    """One step of ``PolicySet.visit``: a rule and where it came from, or an error."""

    binding: Binding | None = None
    subject: Subject | None = None
    rule: Rule | None = None
    error: str = ""

    @property
    def source(self) -> str:
        if self.binding is None or self.subject is None:
            return ""
        return self.binding.describe(self.subject)


@dataclass(frozen=True)
class Grant:
    """One answer to "who can": a subject and the binding and role that let it.

    ``bypass`` marks ``system:masters`` (no binding involved); ``note`` explains grants that
    are not plain RBAC (the Node authorizer's object-scoped ones).
    """

    subject_kind: str
    subject_name: str
    subject_namespace: str = ""
    binding_kind: str = ""
    binding_name: str = ""
    binding_namespace: str = ""
    role_kind: str = ""
    role_name: str = ""
    bypass: bool = False
    note: str = ""

    @property
    def username(self) -> str:
        """The user name a User or ServiceAccount grant is for ("" for groups)."""
        if self.subject_kind == USER:
            return self.subject_name
        if self.subject_kind == SERVICE_ACCOUNT:
            return service_account_username(self.subject_namespace, self.subject_name)
        return ""


def aggregate_errors(errors: Sequence[str]) -> str:
    """apimachinery's error aggregate: one message as is, several (deduplicated) in [...]."""
    unique = list(dict.fromkeys(errors))
    if len(errors) == 1 or len(unique) == 1:
        return unique[0] if unique else ""
    return "[" + ", ".join(unique) + "]"


def _keys_for(binding: Binding) -> set[tuple[str, str]]:
    """The index keys under which a binding's subjects can match a user."""
    keys: set[tuple[str, str]] = set()
    for subject in binding.subjects:
        if subject.kind == GROUP:
            keys.add((GROUP, subject.name))
        else:
            username = subject.username(binding.namespace)
            if username is not None:
                keys.add((USER, username))
    return keys


@dataclass
class _BindingIndex:
    """Bindings in a fixed order, with the positions of those naming each user or group."""

    bindings: list[Binding] = field(default_factory=list)
    by_key: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def add(self, binding: Binding) -> None:
        position = len(self.bindings)
        self.bindings.append(binding)
        for key in _keys_for(binding):
            self.by_key.setdefault(key, []).append(position)

    def candidates(self, user: User) -> list[Binding]:
        positions: set[int] = set(self.by_key.get((USER, user.name), ()))
        for group in user.groups:
            positions.update(self.by_key.get((GROUP, group), ()))
        return [self.bindings[p] for p in sorted(positions)]


class PolicySet:
    """An immutable snapshot of the RBAC objects, indexed for evaluation (module docstring)."""

    def __init__(
        self,
        roles: Iterable[RoleDef] = (),
        cluster_roles: Iterable[RoleDef] = (),
        role_bindings: Iterable[Binding] = (),
        cluster_role_bindings: Iterable[Binding] = (),
    ) -> None:
        self._cluster_roles: dict[str, RoleDef] = {r.name: r for r in cluster_roles}
        self._roles: dict[tuple[str, str], RoleDef] = {(r.namespace, r.name): r for r in roles}
        # Name order stands in for the informer order upstream visits bindings in; it only
        # decides which of several allowing bindings the reason names.
        self._cluster_bindings = _BindingIndex()
        for binding in sorted(cluster_role_bindings, key=lambda b: b.name):
            self._cluster_bindings.add(binding)
        self._namespace_bindings: dict[str, _BindingIndex] = {}
        for binding in sorted(role_bindings, key=lambda b: (b.namespace, b.name)):
            self._namespace_bindings.setdefault(binding.namespace, _BindingIndex()).add(binding)

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]]) -> PolicySet:
        """A snapshot from API objects of the four RBAC kinds (other kinds are ignored)."""
        roles: list[RoleDef] = []
        cluster_roles: list[RoleDef] = []
        role_bindings: list[Binding] = []
        cluster_role_bindings: list[Binding] = []
        for obj in objects:
            kind = obj.get("kind")
            if kind == ROLE:
                roles.append(RoleDef.from_json(obj))
            elif kind == CLUSTER_ROLE:
                cluster_roles.append(RoleDef.from_json(obj))
            elif kind == ROLE_BINDING:
                role_bindings.append(Binding.from_json(obj))
            elif kind == CLUSTER_ROLE_BINDING:
                cluster_role_bindings.append(Binding.from_json(obj))
        return cls(roles, cluster_roles, role_bindings, cluster_role_bindings)

    # --- lookups ------------------------------------------------------------------------

    @property
    def cluster_role_bindings(self) -> Sequence[Binding]:
        return tuple(self._cluster_bindings.bindings)

    def role_bindings(self, namespace: str) -> Sequence[Binding]:
        index = self._namespace_bindings.get(namespace)
        return tuple(index.bindings) if index else ()

    def namespaces(self) -> list[str]:
        """Namespaces that have RoleBindings."""
        return sorted(self._namespace_bindings)

    def cluster_role(self, name: str) -> RoleDef | None:
        return self._cluster_roles.get(name)

    def role(self, namespace: str, name: str) -> RoleDef | None:
        return self._roles.get((namespace, name))

    def role_ref_rules(self, ref: RoleRef, binding_namespace: str) -> tuple[Rule, ...]:
        """The rules a roleRef resolves to; ``LookupError`` with upstream's text if none.

        The messages are those of the informer listers the authorizer reads through
        (singular resource names: ``clusterrole.rbac.authorization.k8s.io "x" not found``).
        """
        if ref.kind == ROLE:
            role = self._roles.get((binding_namespace, ref.name)) if binding_namespace else None
            if role is None:
                raise LookupError(f"role.rbac.authorization.k8s.io {go_quote(ref.name)} not found")
            return role.rules
        if ref.kind == CLUSTER_ROLE:
            cluster_role = self._cluster_roles.get(ref.name)
            if cluster_role is None:
                raise LookupError(
                    f"clusterrole.rbac.authorization.k8s.io {go_quote(ref.name)} not found"
                )
            return cluster_role.rules
        raise LookupError(f"unsupported role reference kind: {go_quote(ref.kind)}")

    # --- the evaluation core ------------------------------------------------------------

    def visit(self, user: User, namespace: str) -> Iterator[Visit]:
        """Every rule that applies to ``user`` in ``namespace`` (module docstring)."""
        scopes: list[tuple[_BindingIndex, str]] = [(self._cluster_bindings, "")]
        if namespace and namespace in self._namespace_bindings:
            scopes.append((self._namespace_bindings[namespace], namespace))
        for index, scope in scopes:
            for binding in index.candidates(user):
                subject = binding.first_subject_for(user)
                if subject is None:
                    continue
                try:
                    resolved = self.role_ref_rules(binding.role_ref, scope)
                except LookupError as exc:
                    yield Visit(binding=binding, subject=subject, error=str(exc))
                    continue
                for rule in resolved:
                    yield Visit(binding=binding, subject=subject, rule=rule)

    def evaluate(self, attrs: Attributes) -> Decision:
        """The RBAC authorizer's decision for ``attrs`` (allow, or no opinion)."""
        errors: list[str] = []
        for step in self.visit(attrs.user, attrs.namespace):
            if step.rule is not None and rule_allows(step.rule, attrs):
                return Decision(True, f"RBAC: allowed by {step.source}")
            if step.error:
                errors.append(step.error)
        return Decision(False, f"RBAC: {aggregate_errors(errors)}" if errors else "")

    def rules_for(self, user: User, namespace: str) -> tuple[list[Rule], list[str]]:
        """All rules that apply to ``user`` in ``namespace``, and the resolution errors."""
        found: list[Rule] = []
        errors: list[str] = []
        for step in self.visit(user, namespace):
            if step.rule is not None:
                found.append(step.rule)
            if step.error:
                errors.append(step.error)
        return found, errors

    def grants(
        self,
        verb: str,
        api_group: str,
        resource: str,
        subresource: str = "",
        namespace: str = "",
        name: str = "",
    ) -> list[Grant]:
        """Which subjects RBAC lets do this, one ``Grant`` per (binding, subject)."""
        out: list[Grant] = []
        scopes: list[tuple[Sequence[Binding], str]] = [(self._cluster_bindings.bindings, "")]
        if namespace:
            scopes.append((self.role_bindings(namespace), namespace))
        for bindings, scope in scopes:
            for binding in bindings:
                try:
                    resolved = self.role_ref_rules(binding.role_ref, scope)
                except LookupError:
                    continue
                if not any(
                    rbac_rules.allows_resource(rule, verb, api_group, resource, subresource, name)
                    for rule in resolved
                ):
                    continue
                for subject in binding.subjects:
                    if subject.kind not in (GROUP, USER, SERVICE_ACCOUNT) or (
                        subject.kind != GROUP and subject.username(binding.namespace) is None
                    ):
                        # A subject that can never match anyone grants nothing.
                        continue
                    subject_namespace = ""
                    if subject.kind == SERVICE_ACCOUNT:
                        subject_namespace = subject.namespace or binding.namespace
                    out.append(
                        Grant(
                            subject_kind=subject.kind,
                            subject_name=subject.name,
                            subject_namespace=subject_namespace,
                            binding_kind=binding.kind,
                            binding_name=binding.name,
                            binding_namespace=binding.namespace,
                            role_kind=binding.role_ref.kind,
                            role_name=binding.role_ref.name,
                        )
                    )
        return out


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    """Upstream's ``RuleAllows``: one rule against one request."""
    if attrs.resource_request:
        return rbac_rules.allows_resource(
            rule, attrs.verb, attrs.api_group, attrs.resource, attrs.subresource, attrs.name
        )
    return rbac_rules.allows_non_resource(rule, attrs.verb, attrs.path)
