"""meta.k8s.io/v1 Table answers, for ``kubectl get``'s human-readable output.

kubectl asks with ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``; the server
formats every cell (``clusterapi.resources.printers``), and each row carries the object's
metadata (``includeObject=Metadata``, the default), the whole object (``Object``: for
``--sort-by``) or nothing (``None``).
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest

from clusterapi.api.negotiation import wants
from clusterapi.resources import printers, stored_rows
from clusterapi.resources.registry import Kind

Obj = dict[str, Any]


def wanted(request: HttpRequest) -> str | None:
    return wants(request.META.get("HTTP_ACCEPT", ""), "Table", "meta.k8s.io", ("v1", "v1beta1"))


def from_stored_rows(kind: Kind, request: HttpRequest) -> bool:
    """Whether a list can be answered from the rows kept with the objects: they hold the
    default ``includeObject=Metadata`` form, for kinds whose rows stand alone."""
    return request.GET.get("includeObject", "Metadata") == "Metadata" and stored_rows.stored(
        kind.kind
    )


def build_from_stored(kind: Kind, kept: list[str], raw: list[str], metadata: Obj) -> bytes:
    """The Table of a list, joined from the kept rows (ages brought up to date)."""
    head = orjson.dumps(
        {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "columnDefinitions": printers.column_definitions(kind.kind),
        }
    )[:-1]
    rows = b",".join(stored_rows.row_for(kind.kind, k, d) for k, d in zip(kept, raw, strict=True))
    return head + b',"rows":[' + stored_rows.render(rows) + b"]}"


def row(kind: Kind, obj: Obj, include: str) -> Obj:
    out: Obj = {"cells": printers.table_row_cells(kind.kind, obj)}
    if include == "Object":
        out["object"] = obj
    elif include != "None":
        out["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {}),
        }
    return out


def build(
    kind: Kind,
    objects: list[Obj],
    request: HttpRequest,
    resource_version: str,
    *,
    with_columns: bool = True,
) -> Obj:
    include = request.GET.get("includeObject", "Metadata")
    body: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
    }
    if with_columns:
        body["columnDefinitions"] = printers.column_definitions(kind.kind)
    body["rows"] = [row(kind, obj, include) for obj in objects]
    return body
