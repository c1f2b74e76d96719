"""The audit log through the API: ``GET /audit/v1/events[?limit=N]``, newest first.

The view is routed through ``clusterapi.api.urls.authenticated``, so the request is
authenticated by the one chain and authorized as a non-resource request (``get`` on the path
``/audit/v1/events``): only ``cluster-admin`` (``nonResourceURLs: ["*"]``) and
``system:masters`` reach it; everyone else gets upstream's 403 for a path.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from clusterapi.api.requests import query_int
from clusterapi.api.status import json_response
from clusterapi.audit import log
from clusterapi.audit.models import AuditEvent
from clusterapi.core.errors import bad_request, method_not_allowed

# Without ``?limit=`` at most this many events are returned (the newest).
DEFAULT_LIMIT = 500


def events(request: HttpRequest) -> HttpResponse:
    """The newest audit events, ``{"items": [...]}``, at most ``?limit=`` of them."""
    if request.method not in ("GET", "HEAD"):
        raise method_not_allowed()
    limit = query_int(request.GET, "limit")
    if limit is None or limit == 0:
        limit = DEFAULT_LIMIT
    if limit < 0:
        raise bad_request(f"invalid value for limit: {limit}: must be positive")
    log.flush()  # what this process answered already is in the log (batch mode)
    newest = AuditEvent.objects.order_by("-timestamp", "-id")[:limit]
    return json_response({"items": [event.to_json() for event in newest]})
