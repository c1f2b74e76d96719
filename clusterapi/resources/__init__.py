"""The kind registry and what hangs off it.

``registry`` defines ``Kind``; ``kinds`` holds one module per kind and the ``KINDS`` table;
``schemas`` loads the kubernetes-validate definitions; ``defaults`` holds defaulting shared by
several kinds; ``printers`` the columns ``kubectl get`` prints. The lookups below are what the
API and the store use to find a kind from a URL or from an object's apiVersion and kind.
"""

from __future__ import annotations

import functools

from clusterapi.resources.kinds import KINDS
from clusterapi.resources.registry import Kind

__all__ = ["KINDS", "Kind", "by_kind", "by_resource", "group_versions", "groups"]


@functools.cache
def _by_resource() -> dict[tuple[str, str, str], Kind]:
    return {(k.group, k.version, k.plural): k for k in KINDS}


@functools.cache
def _by_kind() -> dict[tuple[str, str], Kind]:
    return {(k.api_version, k.kind): k for k in KINDS}


def by_resource(group: str, version: str, plural: str) -> Kind | None:
    """The kind served at ``/apis/<group>/<version>/<plural>`` (group "" for ``/api/v1``)."""
    return _by_resource().get((group, version, plural))


def by_kind(api_version: str, kind: str) -> Kind | None:
    """The kind an object names with its ``apiVersion`` and ``kind``."""
    return _by_kind().get((api_version, kind))


def registered(api_version: str, kind: str) -> Kind:
    """A kind the code names itself (``registered("v1", "Pod")``); LookupError if unknown."""
    found = _by_kind().get((api_version, kind))
    if found is None:
        raise LookupError(f"{api_version} {kind} is not registered")
    return found


@functools.cache
def groups() -> list[str]:
    """API group names in preference order (core "" first), each once."""
    seen: dict[str, None] = {}
    for k in KINDS:
        seen.setdefault(k.group, None)
    return list(seen)


@functools.cache
def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs served, in preference order."""
    seen: dict[tuple[str, str], None] = {}
    for k in KINDS:
        seen.setdefault((k.group, k.version), None)
    return list(seen)
