"""Errors of the store and the API, shaped like Kubernetes' ``Status`` failures.

Every failure the API can answer is an ``ApiError``: an HTTP code, a ``reason`` (NotFound,
AlreadyExists, Conflict, Invalid, ...), a human message in Kubernetes' wording and the
``details`` block clients read (name, group, kind, causes). ``clusterapi.api.status`` encodes
them byte for byte as the upstream API server does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clusterapi.resources.registry import Kind


@dataclass
class Cause:
    """One cause of an Invalid (or other) failure, with the field path it concerns."""

    reason: str
    message: str
    field: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    """A failure answered as a Kubernetes ``Status``."""

    code: int
    reason: str
    message: str
    name: str = ""
    group: str = ""
    kind: str = ""
    uid: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after: int = 0

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.group:
            out["group"] = self.group
        if self.kind:
            out["kind"] = self.kind
        if self.uid:
            out["uid"] = self.uid
        if self.causes:
            out["causes"] = [c.to_json() for c in self.causes]
        if self.retry_after:
            out["retryAfterSeconds"] = self.retry_after
        return out


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{kind.qualified_plural} "{name}" not found',
        name=name,
        group=kind.group,
        kind=kind.plural,
    )


def namespace_not_found(name: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{name}" not found', name=name, kind="namespaces")


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{kind.qualified_plural} "{name}" already exists',
        name=name,
        group=kind.group,
        kind=kind.plural,
    )


def conflict(kind: Kind, name: str, why: str | None = None) -> ApiError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind.qualified_plural} "{name}": {why}',
        name=name,
        group=kind.group,
        kind=kind.plural,
    )


def invalid(kind: Kind, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid, with the message kubectl prints: ``The Deployment "x" is invalid: ...``."""
    qualified = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {summary}',
        name=name,
        group=kind.group,
        kind=kind.kind,
        causes=causes,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(message: str, kind: Kind | None = None, name: str = "") -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        message,
        name=name,
        group=kind.group if kind else "",
        kind=kind.plural if kind else "",
    )


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", message)
