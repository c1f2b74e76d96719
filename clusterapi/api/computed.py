"""Computed read-only kinds (``Kind.reader``): ``get`` and ``list``, answered without the store.

The reader returns the objects (without kind and apiVersion, as list items are served); this
module adds what every list has: label and field selectors (``matcher``), Table output for
``kubectl get``, the kind on a single object, and ``NotFound`` for a name with nothing to
show. Watches and writes are 405, as upstream answers verbs a resource does not have.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from clusterapi.api import table
from clusterapi.api.requests import Target, matcher, query_bool
from clusterapi.api.status import json_response
from clusterapi.store import errors

Obj = dict[str, Any]


def handle(request: HttpRequest, target: Target) -> HttpResponse:
    """Serve a GET of a computed kind (anything else is 405)."""
    kind = target.kind
    if request.method != "GET" or target.subresource or query_bool(request.GET, "watch"):
        raise errors.method_not_allowed()
    read = import_string(kind.reader)
    if not target.is_collection:
        found: list[Obj] = read(target.namespace, target.name)
        if not found:
            raise errors.not_found(kind, target.name)
        obj = {"kind": kind.kind, "apiVersion": kind.api_version, **found[0]}
        if table.wanted(request):
            return json_response(table.build(kind, [obj], request, ""))
        return json_response(obj)
    match, name = matcher(kind, request.GET)
    objects: list[Obj] = read(target.namespace, name or "")
    if match is not None:
        objects = [obj for obj in objects if match(obj)]
    if table.wanted(request):
        return json_response(table.build(kind, objects, request, ""))
    return json_response(
        {"kind": kind.list_kind, "apiVersion": kind.api_version, "metadata": {}, "items": objects}
    )
