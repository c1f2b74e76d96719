"""The Kubernetes object schemas Berth serves, from the kubernetes-validate package.

kubernetes-validate bundles the upstream OpenAPI definitions converted to JSON Schema, one
directory per Kubernetes release. Berth reads the v1.37 ``_definitions.json`` once and uses it
for validation (``clusterapi.admission``), strategic-merge and apply patch metadata
(``x-kubernetes-patch-merge-key`` and friends) and the OpenAPI v3 documents (``clusterapi.api``).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson

SCHEMA_VERSION = "v1.37.0"
REF_PREFIX = "#/$defs/"

Schema = dict[str, Any]


def _schema_dir(strict: bool) -> Any:
    suffix = "-local-strict" if strict else "-local"
    return (
        resources.files("kubernetes_validate")
        .joinpath("kubernetes-json-schema")
        .joinpath(SCHEMA_VERSION + suffix)
    )


@functools.cache
def definitions(strict: bool = False) -> dict[str, Schema]:
    """All definitions by their OpenAPI name (``io.k8s.api.apps.v1.Deployment``).

    The strict variant forbids unknown properties (``additionalProperties: false``).
    """
    raw = _schema_dir(strict).joinpath("_definitions.json").read_bytes()
    defs: dict[str, Schema] = orjson.loads(raw)["$defs"]
    return defs


@functools.cache
def definition_name(group: str, version: str, kind: str) -> str | None:
    """The definition whose ``x-kubernetes-group-version-kind`` names this kind."""
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (group, version, kind):
                return name
    return None


def resolve(node: Schema) -> Schema:
    """Follow ``$ref`` (possibly through ``allOf``) to the schema it names."""
    seen = 0
    while True:
        ref = node.get("$ref")
        if ref is None and len(node.get("allOf", ())) == 1:
            ref = node["allOf"][0].get("$ref")
        if ref is None or seen > 32:
            return node
        node = definitions()[ref.removeprefix(REF_PREFIX)]
        seen += 1


def child(node: Schema | None, key: str) -> Schema | None:
    """The schema of property ``key`` of an object schema, resolved; None if unknown."""
    if node is None:
        return None
    node = resolve(node)
    props = node.get("properties")
    if props and key in props:
        return resolve(props[key])
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra)
    return None


def items(node: Schema | None) -> Schema | None:
    """The schema of a list's items, resolved; None if unknown."""
    if node is None:
        return None
    node = resolve(node)
    item = node.get("items")
    return resolve(item) if isinstance(item, dict) else None


def types(node: Schema) -> set[str]:
    """The JSON types a schema allows, ignoring ``null``."""
    t = resolve(node).get("type")
    if t is None:
        return set()
    return {t} - {"null"} if isinstance(t, str) else set(t) - {"null"}
