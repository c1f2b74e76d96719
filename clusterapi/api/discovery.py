"""Discovery: ``/version``, ``/api``, ``/apis`` and the per-group-version resource lists.

Both forms are served from the kind registry. kubectl 1.30+ asks for aggregated discovery
(``apidiscovery.k8s.io/v2``) and recognises it only by the exact response Content-Type; the
legacy lists (APIVersions, APIGroupList, APIResourceList) serve older clients, the Python
client's DynamicClient and ``kubectl auth can-i``, which always reads ``/api/v1``.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from clusterapi.api.negotiation import wants
from clusterapi.api.status import error_response, json_response
from clusterapi.resources import KINDS, group_versions, groups
from clusterapi.resources.registry import Kind
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"

# Verbs of each subresource, as upstream registers them.
SUBRESOURCE_VERBS: dict[str, list[str]] = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "finalize": ["update"],
    "log": ["get"],
    "eviction": ["create"],
    "token": ["create"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
}


def _subresource_kind(kind: Kind, sub: str) -> tuple[str, str, str]:
    """(group, version, kind) a subresource answers with."""
    if sub == "scale":
        return "autoscaling", "v1", "Scale"
    if sub == "binding":
        return "", "v1", "Binding"
    if sub == "eviction":
        return "policy", "v1", "Eviction"
    if sub == "token":
        return "authentication.k8s.io", "v1", "TokenRequest"
    return kind.group, kind.version, kind.kind


def version(request: HttpRequest) -> HttpResponse:
    major, minor, _patch = settings.BERTH_KUBERNETES_VERSION.split(".")
    return json_response(
        {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": str(int(minor) - 1),
            "gitVersion": f"v{settings.BERTH_KUBERNETES_VERSION}-berth",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-11-27T00:00:00Z",
            "goVersion": "go1.25.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
    )


def _aggregated_version(request: HttpRequest) -> str | None:
    return wants(
        request.META.get("HTTP_ACCEPT", ""),
        "APIGroupDiscoveryList",
        "apidiscovery.k8s.io",
        ("v2", "v2beta1"),
    )


def _aggregated_resource(kind: Kind) -> Obj:
    entry: Obj = {
        "resource": kind.plural,
        "responseKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
        "scope": "Namespaced" if kind.namespaced else "Cluster",
        "singularResource": kind.singular_name,
        "verbs": sorted(kind.verbs),
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    subs = []
    for sub in kind.subresources:
        g, v, k = _subresource_kind(kind, sub)
        subs.append(
            {
                "subresource": sub,
                "responseKind": {"group": g, "version": v, "kind": k},
                "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
        )
    if subs:
        entry["subresources"] = subs
    return entry


@functools.cache
def _aggregated_groups(core: bool, api_version: str) -> Obj:
    items = []
    for group in groups():
        if (group == "") != core:
            continue
        versions = []
        for g, v in group_versions():
            if g != group:
                continue
            versions.append(
                {
                    "version": v,
                    "resources": [
                        _aggregated_resource(k) for k in KINDS if (k.group, k.version) == (g, v)
                    ],
                    "freshness": "Current",
                }
            )
        metadata: Obj = {"name": group, "creationTimestamp": None}
        items.append({"metadata": metadata, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{api_version}",
        "metadata": {},
        "items": items,
    }


def _aggregated_response(core: bool, api_version: str) -> HttpResponse:
    response = json_response(_aggregated_groups(core, api_version))
    response["Content-Type"] = AGGREGATED.format(v=api_version)
    return response


def api_versions(request: HttpRequest) -> HttpResponse:
    aggregated = _aggregated_version(request)
    if aggregated:
        return _aggregated_response(True, aggregated)
    host = request.get_host()
    return json_response(
        {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }
    )


def _group_entry(group: str) -> Obj:
    versions = [
        {"groupVersion": f"{group}/{v}", "version": v} for g, v in group_versions() if g == group
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_groups(request: HttpRequest) -> HttpResponse:
    aggregated = _aggregated_version(request)
    if aggregated:
        return _aggregated_response(False, aggregated)
    return json_response(
        {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group_entry(g) for g in groups() if g],
        }
    )


def api_group(request: HttpRequest, group: str) -> HttpResponse:
    if group not in groups() or not group:
        return error_response(
            ApiError(404, "NotFound", "the server could not find the requested resource")
        )
    return json_response({"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group)})


@functools.cache
def _resource_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for kind in KINDS:
        if (kind.group, kind.version) != (group, version):
            continue
        entry: Obj = {
            "name": kind.plural,
            "singularName": kind.singular_name,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": sorted(kind.verbs),
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        resources.append(entry)
        for sub in kind.subresources:
            g, v, k = _subresource_kind(kind, sub)
            sub_entry: Obj = {
                "name": f"{kind.plural}/{sub}",
                "singularName": "",
                "namespaced": kind.namespaced,
                "kind": k,
                "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
            if (g, v) != (kind.group, kind.version):
                sub_entry["group"] = g
                sub_entry["version"] = v
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def resource_list(request: HttpRequest, group: str = "", version: str = "v1") -> HttpResponse:
    if (group, version) not in group_versions():
        return error_response(
            ApiError(404, "NotFound", "the server could not find the requested resource")
        )
    return json_response(_resource_list(group, version))


def health(request: HttpRequest) -> HttpResponse:
    """``/healthz``, ``/livez``, ``/readyz``: "ok" once the database answers."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return HttpResponse(f"[-]database failed: {exc}\n", status=500, content_type="text/plain")
    if request.GET.get("verbose") is not None:
        return HttpResponse("[+]ping ok\n[+]database ok\nhealthz check passed\n")
    return HttpResponse("ok", content_type="text/plain")
