"""Parsing a resource URL and its query into what the handlers act on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import QueryDict

from clusterapi.core.selectors import FieldSelector, LabelSelector, SelectorError
from clusterapi.resources import by_resource
from clusterapi.resources.registry import Kind
from clusterapi.store import errors

Obj = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """What a resource URL names: a kind, a namespace (or all), an object and a subresource."""

    kind: Kind
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    @property
    def is_collection(self) -> bool:
        return not self.name


def _not_found_path() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource")


def resolve(group: str, version: str, rest: str) -> Target:
    """Map the path after ``/api/v1/`` or ``/apis/<g>/<v>/`` to a Target (404 if unknown).

    ``namespaces/x/pods`` (a collection in a namespace) and ``namespaces/x/status`` (the
    namespace's status subresource) share a shape; a namespaced plural wins, as upstream.
    """
    parts = [p for p in rest.split("/") if p]

    def kind_of(plural: str) -> Kind:
        kind = by_resource(group, version, plural)
        if kind is None:
            raise _not_found_path()
        return kind

    if not parts:
        raise _not_found_path()
    if parts[0] == "namespaces" and len(parts) >= 3:
        inner = by_resource(group, version, parts[2])
        if inner is not None and inner.namespaced:
            namespace = parts[1]
            if len(parts) == 3:
                return Target(inner, namespace)
            if len(parts) == 4:
                return Target(inner, namespace, parts[3])
            if len(parts) == 5:
                return _subresource(Target(inner, namespace, parts[3], parts[4]))
            raise _not_found_path()
        if group or len(parts) > 3:
            raise _not_found_path()
    kind = kind_of(parts[0])
    if len(parts) == 1:
        return Target(kind)
    if kind.namespaced:
        raise _not_found_path()
    if len(parts) == 2:
        return Target(kind, "", parts[1])
    if len(parts) == 3:
        return _subresource(Target(kind, "", parts[1], parts[2]))
    raise _not_found_path()


def _subresource(target: Target) -> Target:
    if target.subresource not in target.kind.subresources:
        raise _not_found_path()
    return target


def query_bool(query: QueryDict, key: str) -> bool:
    return query.get(key, "").lower() in ("true", "1")


def query_int(query: QueryDict, key: str) -> int | None:
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise errors.bad_request(f"invalid value for {key}: {value!r}") from exc


def dry_run(query: QueryDict) -> bool:
    values = query.getlist("dryRun")
    for value in values:
        if value != "All":
            raise errors.bad_request(f'Invalid dry run value: "{value}": supported values: "All"')
    return bool(values)


def field_validation(query: QueryDict) -> str:
    value = query.get("fieldValidation", "") or "Warn"
    if value not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'Invalid field validation value: "{value}": supported values: "Ignore", "Warn", '
            '"Strict"'
        )
    return value


def _field_value(kind: Kind, obj: Obj, name: str) -> str | None:
    meta = obj.get("metadata") or {}
    if name == "metadata.name":
        return str(meta.get("name", ""))
    if name == "metadata.namespace":
        return str(meta.get("namespace", ""))
    getter = kind.field_selectors.get(name)
    return getter(obj) if getter else None


def matcher(kind: Kind, query: QueryDict) -> tuple[Callable[[Obj], bool] | None, str | None]:
    """A filter for the request's label and field selectors, and an exact name if one is asked.

    Returns (None, name) when nothing but ``metadata.name=`` is asked, so the store can look
    the name up directly.
    """
    try:
        labels = LabelSelector.parse(query.get("labelSelector", ""))
        fields = FieldSelector.parse(query.get("fieldSelector", ""))
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from exc
    supported = {"metadata.name", "metadata.namespace", *kind.field_selectors}
    for name in sorted(fields.fields):
        if name not in supported:
            raise errors.bad_request(
                f'"{name}" is not a known field selector: only "'
                + '", "'.join(sorted(supported))
                + '"'
            )
    exact_name = None
    for field_name, op, value in fields.requirements:
        if field_name == "metadata.name" and op in ("=", "=="):
            exact_name = value
    only_name = exact_name is not None and labels.empty and len(fields.requirements) == 1
    if labels.empty and not fields.requirements:
        return None, None
    if only_name:
        return None, exact_name

    def match(obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if not labels.matches(meta.get("labels") or {}):
            return False
        return fields.matches(lambda name: _field_value(kind, obj, name))

    return match, exact_name
