"""OpenAPI v3 documents, built from the kind registry and the kubernetes-validate schemas.

kubectl needs them: ``create -f``/``apply -f`` look for a ``patch`` operation carrying
``x-kubernetes-group-version-kind`` and a ``fieldValidation`` parameter before they send
server-side validation (without it they fail), ``explain`` walks the component schemas, and
client-side apply computes strategic merge patches from them. The root lists one document
per group-version with a content hash, which kubectl uses as its cache key.

The JSON-Schema definitions are converted to OpenAPI 3.0 as upstream publishes them:
``$ref`` into ``#/components/schemas``, a single ``type`` (no ``null``), references with
siblings wrapped in ``allOf``, and int-or-string fields marked ``x-kubernetes-int-or-string``.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse

from clusterapi.api.status import error_response
from clusterapi.resources import KINDS, group_versions, schemas
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]
_COMPONENTS = "#/components/schemas/"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_EXTRA_DEFINITIONS = (
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.api.autoscaling.v1.Scale",
)


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if len(kinds) == 1 or kinds:
                out["type"] = kinds[0]
            continue
        out[key] = _convert(value)
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _COMPONENTS + ref.removeprefix(schemas.REF_PREFIX)
        if out:
            out["allOf"] = [{"$ref": target}]
        else:
            out = {"$ref": target}
    return out


def _component(name: str) -> Obj:
    if name == _INT_OR_STRING:
        return {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
    if name == _QUANTITY:
        return {
            "description": "Quantity is a fixed-point representation of a number.",
            "oneOf": [{"type": "string"}, {"type": "number"}],
        }
    converted: Obj = _convert(schemas.definitions()[name])
    return converted


def _references(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.removeprefix(schemas.REF_PREFIX)
            if name not in found:
                found.add(name)
                _references(schemas.definitions()[name], found)
        for value in node.values():
            _references(value, found)
    elif isinstance(node, list):
        for value in node:
            _references(value, found)


def _parameters(*names: str) -> list[Obj]:
    kinds = {
        "force": "boolean",
        "limit": "integer",
        "timeoutSeconds": "integer",
        "watch": "boolean",
    }
    return [
        {"name": n, "in": "query", "schema": {"type": kinds.get(n, "string"), "uniqueItems": True}}
        for n in names
    ]


def _ok(ref: str) -> Obj:
    return {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": _COMPONENTS + ref}}},
        },
        "401": {"description": "Unauthorized"},
    }


def _paths(kind: Kind) -> Obj:
    prefix = f"/apis/{kind.group}/{kind.version}" if kind.group else "/api/v1"
    scope = f"{prefix}/namespaces/{{namespace}}" if kind.namespaced else prefix
    gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
    ref = kind.definition
    path_params: list[Obj] = [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    if kind.namespaced:
        path_params.append(
            {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    body = {"content": {"application/json": {"schema": {"$ref": _COMPONENTS + ref}}}}
    patch_body = {
        "content": {
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
            "application/json-patch+json": {
                "schema": {"type": "array", "items": {"type": "object"}}
            },
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
        },
        "required": True,
    }
    write_params = _parameters("dryRun", "fieldManager", "fieldValidation")

    def op(action: str, **extra: Any) -> Obj:
        return {
            "tags": [kind.group or "core"],
            "operationId": f"{action}{kind.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            **extra,
        }

    if kind.review:
        # Create-only kinds: one POST, nothing to read back.
        return {
            f"{scope}/{kind.plural}": {
                "post": op("post", parameters=write_params, requestBody=body, responses=_ok(ref)),
                "parameters": path_params[1:],
            }
        }
    name_path = f"{scope}/{kind.plural}/{{name}}"
    paths: Obj = {
        f"{scope}/{kind.plural}": {
            "get": op(
                "list",
                parameters=_parameters(
                    "labelSelector",
                    "fieldSelector",
                    "limit",
                    "continue",
                    "resourceVersion",
                    "timeoutSeconds",
                    "watch",
                ),
                responses=_ok(ref),
            ),
            "post": op("post", parameters=write_params, requestBody=body, responses=_ok(ref)),
            "delete": op(
                "deletecollection",
                parameters=_parameters("labelSelector", "fieldSelector", "gracePeriodSeconds"),
                responses=_ok("io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
            ),
            "parameters": path_params[1:],
        },
        name_path: {
            "get": op("get", responses=_ok(ref)),
            "put": op("put", parameters=write_params, requestBody=body, responses=_ok(ref)),
            "patch": op(
                "patch",
                parameters=_parameters("dryRun", "fieldManager", "fieldValidation", "force"),
                requestBody=patch_body,
                responses=_ok(ref),
            ),
            "delete": op(
                "delete",
                parameters=_parameters("dryRun", "gracePeriodSeconds", "propagationPolicy"),
                responses=_ok(ref),
            ),
            "parameters": path_params,
        },
    }
    for sub in kind.subresources:
        if sub in ("status", "scale"):
            sub_ref = ref if sub == "status" else "io.k8s.api.autoscaling.v1.Scale"
            paths[f"{name_path}/{sub}"] = {
                "get": op("get", responses=_ok(sub_ref)),
                "put": op("put", parameters=write_params, responses=_ok(sub_ref)),
                "patch": op(
                    "patch",
                    parameters=_parameters("dryRun", "fieldManager", "fieldValidation", "force"),
                    requestBody=patch_body,
                    responses=_ok(sub_ref),
                ),
                "parameters": path_params,
            }
    return paths


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.cache
def _document(group: str, version: str) -> bytes:
    # Computed kinds (``Kind.reader``) have no schema to publish.
    kinds = [k for k in KINDS if (k.group, k.version) == (group, version) and not k.reader]
    paths: Obj = {}
    needed: set[str] = set(_EXTRA_DEFINITIONS)
    for kind in kinds:
        paths.update(_paths(kind))
        needed.add(kind.definition)
    for name in list(needed):
        _references(schemas.definitions()[name], needed)
    document = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"{schemas.SCHEMA_VERSION}"},
        "paths": paths,
        "components": {
            "schemas": {name: _component(name) for name in sorted(needed)},
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}
            },
        },
        "security": [{"BearerToken": []}],
    }
    return orjson.dumps(document)


@functools.cache
def _hash(group: str, version: str) -> str:
    return hashlib.sha512(_document(group, version)).hexdigest().upper()


def root(request: HttpRequest) -> HttpResponse:
    paths = {
        _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash={_hash(g, v)}"}
        for g, v in group_versions()
    }
    return HttpResponse(orjson.dumps({"paths": paths}), content_type="application/json")


def group_version(request: HttpRequest, path: str) -> HttpResponse:
    for g, v in group_versions():
        if _gv_path(g, v) == path.strip("/"):
            response = HttpResponse(_document(g, v), content_type="application/json")
            if request.GET.get("hash") == _hash(g, v):
                response["Cache-Control"] = "public, immutable"
            else:
                response["Cache-Control"] = "no-cache, private"
            response["Etag"] = f'"{_hash(g, v)}"'
            return response
    return error_response(
        ApiError(404, "NotFound", "the server could not find the requested resource")
    )


def not_served(request: HttpRequest) -> HttpResponse:
    """``/openapi/v2``: not served; kubectl only falls back to it when v3 is unusable."""
    return error_response(
        ApiError(404, "NotFound", "the server could not find the requested resource")
    )
