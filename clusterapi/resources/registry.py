"""The kind registry: every API kind Berth serves is declared here once.

A ``Kind`` says where the kind lives (group, version, plural, scope), how clients name it
(short names, categories), which subresources it has and how the store treats it (strategy
hooks: defaulting, validation, which field selectors it supports). API routes, discovery,
OpenAPI, Table output and (later) RBAC resource names and quota counting all derive from these
declarations. Each kind has its own module in ``clusterapi.resources.kinds``, whose package
lists them all; the columns ``kubectl get`` prints for a kind live beside them in
``clusterapi.resources.printers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clusterapi.resources import schemas

Obj = dict[str, Any]
FieldGetter = Callable[[Obj], str]


@dataclass(frozen=True)
class Column:
    """A printer column of ``kubectl get`` (meta.k8s.io/v1 TableColumnDefinition)."""

    name: str
    cell: Callable[[Obj], Any]
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0


def _no_defaults(obj: Obj) -> None:
    return None


def _no_validation(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    return []


def _never(obj: Obj, grace: int | None) -> bool:
    return False


def _always(obj: Obj) -> bool:
    return True


@dataclass(frozen=True)
class Kind:
    """One API kind, declared once. See the module docstring."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: Sequence[str] = ()
    categories: Sequence[str] = ()
    # Subresources served beside the main resource: "status", "scale", "binding", "log", ...
    subresources: Sequence[str] = ()
    verbs: Sequence[str] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    # Extra field selectors beyond metadata.name and metadata.namespace.
    field_selectors: Mapping[str, FieldGetter] = field(default_factory=dict)
    # Fill in defaults as upstream does; mutates the object in place.
    defaults: Callable[[Obj], None] = _no_defaults
    # Kind-specific validation: a list of (field path, invalid value, detail) problems.
    validate: Callable[[Obj, Obj | None], list[tuple[str, str, str]]] = _no_validation
    # DELETE answers with the object rather than a Status (the Python client's typed methods
    # for pods, services, PVs, ... deserialize the body as the kind).
    delete_returns_object: bool = False
    # Whether the kind has a spec/status split: then status changes only through /status and
    # metadata.generation counts spec changes.
    has_status: bool = True
    # Top-level fields that are not spec: changes to them do not bump metadata.generation.
    non_spec_fields: Sequence[str] = ("metadata", "status", "apiVersion", "kind")
    # Whether a delete must wait (the object stays, with a deletionTimestamp) even without
    # metadata.finalizers: namespaces while spec.finalizers remain, bound pods during their
    # grace period. Gets the object and the requested grace period; may mark the object.
    graceful: Callable[[Obj, int | None], bool] = _never
    # Whether an object marked for deletion may now go (checked on every update to it).
    finalized: Callable[[Obj], bool] = _always
    # Kinds whose create keeps the status the client sent (nodes register with theirs).
    keep_status_on_create: bool = False
    # Create-only kinds answered on the spot and never stored (access reviews, TokenReview):
    # the dotted path of ``handler(user, obj, namespace) -> obj``.
    review: str = ""
    # Read-only kinds computed on request, never stored (metrics.k8s.io NodeMetrics and
    # PodMetrics): the dotted path of ``read(namespace, name) -> [obj]`` (all objects, in a
    # namespace when given, only the one named when given; items without kind/apiVersion).
    # Served for get and list only (clusterapi.api.computed); they have no schema, so no
    # OpenAPI paths and no validation.
    reader: str = ""
    # The singular resource name, when it is not the lower-cased kind.
    singular: str = ""
    # How metadata.name is validated ("subdomain", "label", "dns1035", "path-segment", ...);
    # empty means upstream's rule for this kind (clusterapi.admission.names.NAME_RULES).
    name_rule: str = ""

    @property
    def naming(self) -> str:
        """The name validation rule in force for this kind."""
        from clusterapi.admission.names import name_rule_for

        return self.name_rule or name_rule_for(self.kind, self.group)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def qualified_plural(self) -> str:
        """The plural as messages name it: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def definition(self) -> str:
        """The OpenAPI definition name of this kind's schema."""
        name = schemas.definition_name(self.group, self.version, self.kind)
        if name is None:
            raise LookupError(f"no schema for {self.api_version} {self.kind}")
        return name

    @property
    def list_kind(self) -> str:
        return self.kind + "List"
