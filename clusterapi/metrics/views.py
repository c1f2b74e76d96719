"""Berth's own metrics endpoints under ``/apis/metrics.berth.dev/v1/``.

* ``POST samples``: node agents report (``clusterapi.metrics.ingest``); authorized as the
  resource ``samples`` (create), which only the Node authorizer grants, to nodes.
* ``GET history/nodes/{name}`` and ``GET history/namespaces/{ns}/pods/{name}``: one
  object's series for the dashboard's charts (``?sinceSeconds=`` default the retention,
  ``?step=`` seconds per point, default 15; 0 for the raw samples). Authorized as what it
  shows: ``get`` of ``nodes``/``pods`` in ``metrics.k8s.io`` (the view, edit and admin roles
  have it), not by its own path.

Both run on the shared thread pool like every blocking API view. Successful reports are not
written to the audit log (they are measurements, every few seconds from every agent);
refusals are, as every refused request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import close_old_connections
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from clusterapi.api import negotiation
from clusterapi.api import views as api_views
from clusterapi.api.status import error_response, json_response
from clusterapi.authn import User
from clusterapi.core.errors import ApiError, bad_request, method_not_allowed
from clusterapi.metrics import config, ingest, serving
from clusterapi.metrics.models import Sample
from clusterapi.rbac import Attributes

GROUP = "metrics.berth.dev"
API_VERSION = f"{GROUP}/v1"
DEFAULT_STEP = 15.0
Work = Callable[[HttpRequest, User], HttpResponseBase]
AttributesFor = Callable[[User], Attributes]


def _admit(request: HttpRequest, attributes_for: AttributesFor) -> User | None:
    """Authenticate and impersonate as every API request, then authorize ``attributes_for``."""
    from clusterapi.authn.impersonation import impersonate
    from clusterapi.rbac import authorize, forbidden_error

    user = api_views.authenticate(request)
    if user is None:
        return None
    request.berth_user = user  # type: ignore[attr-defined]
    acting, impersonator = impersonate(request.META, user)
    request.berth_user = acting  # type: ignore[attr-defined]
    request.berth_impersonator = impersonator  # type: ignore[attr-defined]
    attrs = attributes_for(acting)
    request.berth_attributes = attrs  # type: ignore[attr-defined]
    decision = authorize(attrs)
    if not decision.allowed:
        raise forbidden_error(attrs, decision.reason)
    return acting


def _run(request: HttpRequest, attributes_for: AttributesFor, work: Work) -> HttpResponseBase:
    close_old_connections()
    try:
        try:
            user = _admit(request, attributes_for)
            response = api_views.unauthorized() if user is None else work(request, user)
        except ApiError as exc:
            response = error_response(exc)
        if response.status_code >= 400:
            api_views.audit_request(request, response.status_code)
        return response
    finally:
        close_old_connections()


async def _serve(
    request: HttpRequest, attributes_for: AttributesFor, work: Work
) -> HttpResponseBase:
    from asgiref.sync import sync_to_async

    run = sync_to_async(_run, thread_sensitive=False)
    response: HttpResponseBase = await run(request, attributes_for, work)
    return response


# --- samples ----------------------------------------------------------------------------------


def _report(request: HttpRequest, user: User) -> HttpResponseBase:
    if request.method != "POST":
        raise method_not_allowed()
    accepted = ingest.ingest(user, negotiation.decode_body(request))
    return json_response(
        {
            "apiVersion": API_VERSION,
            "kind": ingest.KIND,
            "metadata": {},
            "status": {
                "nodes": accepted.nodes,
                "pods": accepted.pods,
                "skippedPods": accepted.skipped_pods,
            },
        },
        status=201,
    )


@csrf_exempt
async def samples(request: HttpRequest) -> HttpResponseBase:
    """``POST /apis/metrics.berth.dev/v1/samples``."""

    def attributes(user: User) -> Attributes:
        verb = "create" if request.method == "POST" else (request.method or "get").lower()
        return Attributes.for_resource(user, verb, "samples", group=GROUP, version="v1")

    return await _serve(request, attributes, _report)


# --- history ----------------------------------------------------------------------------------


def _float_param(request: HttpRequest, name: str, default: float) -> float:
    value = request.GET.get(name)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise bad_request(f"invalid value for {name}: {value!r}") from exc
    if number < 0:
        raise bad_request(f"invalid value for {name}: {value!r}: must not be negative")
    return number


def _history(kind: str, namespace: str, name: str) -> Work:
    def work(request: HttpRequest, user: User) -> HttpResponseBase:
        if request.method != "GET":
            raise method_not_allowed()
        since = _float_param(request, "sinceSeconds", config.retention_seconds())
        step = _float_param(request, "step", DEFAULT_STEP)
        metadata: dict[str, Any] = {"name": name}
        if namespace:
            metadata["namespace"] = namespace
        body = {
            "apiVersion": API_VERSION,
            "kind": "NodeMetricsHistory" if kind == Sample.NODE else "PodMetricsHistory",
            "metadata": metadata,
            "stepSeconds": step,
            "points": serving.history(kind, namespace, name, since, step),
        }
        return json_response(body)

    return work


@csrf_exempt
async def node_history(request: HttpRequest, name: str) -> HttpResponseBase:
    """``GET /apis/metrics.berth.dev/v1/history/nodes/{name}``."""

    def attributes(user: User) -> Attributes:
        return Attributes.for_resource(
            user, "get", "nodes", group="metrics.k8s.io", version="v1beta1", name=name
        )

    return await _serve(request, attributes, _history(Sample.NODE, "", name))


@csrf_exempt
async def pod_history(request: HttpRequest, namespace: str, name: str) -> HttpResponseBase:
    """``GET /apis/metrics.berth.dev/v1/history/namespaces/{ns}/pods/{name}``."""

    def attributes(user: User) -> Attributes:
        return Attributes.for_resource(
            user,
            "get",
            "pods",
            group="metrics.k8s.io",
            version="v1beta1",
            namespace=namespace,
            name=name,
        )

    return await _serve(request, attributes, _history(Sample.POD, namespace, name))
