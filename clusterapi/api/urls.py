"""Kubernetes' URL layout. Paths match with and without a trailing slash: the Python client
asks for ``/api/`` and ``/version/``, and a redirect would break it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.urls import include, re_path
from django.views.decorators.csrf import csrf_exempt

from clusterapi.api import discovery, openapi, reviews, views
from clusterapi.api.status import error_response
from clusterapi.audit import views as audit_views
from clusterapi.authn import chain
from clusterapi.core.errors import ApiError
from clusterapi.nodeagent import credentials as node_credentials


def authenticated(view: Callable[..., HttpResponseBase]) -> Callable[..., Any]:
    """Wrap a blocking view: bearer token required, run on the shared thread pool."""

    @csrf_exempt
    async def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        return await views.in_thread(request, lambda: view(request, **kwargs))

    return wrapper


def public(view: Callable[..., HttpResponseBase]) -> Callable[..., Any]:
    """Wrap a blocking view anyone may call (version, health) without credentials; it runs
    on the shared thread pool.

    A bearer token that is presented and does not authenticate is still 401, as upstream,
    whose authentication filter runs before every handler and never answers a rejected
    credential as anonymous.
    """

    def answer(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        token = chain.bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        if token is not None and chain.authenticate_token(token) is None:
            response = views.unauthorized()
            views.audit_request(request, response.status_code)
            return response
        return view(request, **kwargs)

    @csrf_exempt
    async def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        return await views.on_pool(lambda: answer(request, **kwargs))

    return wrapper


urlpatterns = [
    # Public information, as upstream's system:public-info-viewer role allows anonymously.
    re_path(r"^version/?$", public(discovery.version)),
    re_path(r"^(?:healthz|livez|readyz)(?:/.*)?$", public(discovery.health)),
    re_path(r"^api/?$", authenticated(discovery.api_versions)),
    re_path(r"^apis/?$", authenticated(discovery.api_groups)),
    re_path(r"^api/v1/?$", authenticated(discovery.resource_list)),
    re_path(r"^apis/(?P<group>[^/]+)/?$", authenticated(discovery.api_group)),
    re_path(
        r"^apis/(?P<group>[^/]+)/(?P<version>[^/]+)/?$", authenticated(discovery.resource_list)
    ),
    re_path(r"^openapi/v3/?$", authenticated(openapi.root)),
    re_path(r"^openapi/v3/(?P<path>.+)$", authenticated(openapi.group_version)),
    re_path(r"^openapi/v2/?$", authenticated(openapi.not_served)),
    # The audit log: a non-resource path only cluster-admin's nonResourceURLs ["*"] reaches.
    re_path(r"^audit/v1/events/?$", authenticated(audit_views.events)),
    re_path(r"^apis/authorization\.berth\.dev/v1/whocan/?$", authenticated(reviews.who_can)),
    # Node agents exchange a bootstrap token for node credentials (clusterapi.nodeagent).
    re_path(
        r"^apis/node\.berth\.dev/v1/nodecredentials/?$",
        authenticated(node_credentials.create),
    ),
    # Node agents' metric samples and the dashboard's history (clusterapi.metrics).
    re_path(r"^apis/metrics\.berth\.dev/v1/", include("clusterapi.metrics.urls")),
    re_path(r"^api/v1/(?P<rest>.+)$", views.core_resources),
    re_path(r"^apis/(?P<group>[^/]+)/(?P<version>[^/]+)/(?P<rest>.+)$", views.group_resources),
]
urlpatterns += __import__("clusterapi.api.bench").api.bench.routes(__import__("os").environ)


def not_found(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
    """Any other path, once authenticated and authorized, is upstream's generic 404."""
    return error_response(
        ApiError(404, "NotFound", "the server could not find the requested resource")
    )


# Last: a path nothing serves is still authenticated (401 for a bad token) and authorized as
# a non-resource request (403 ``cannot get path "/metrics"``) before it is a 404, as upstream.
urlpatterns.append(re_path(r"^", authenticated(not_found)))
