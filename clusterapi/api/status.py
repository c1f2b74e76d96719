"""Kubernetes ``Status`` bodies, encoded byte for byte as the upstream API server does.

Compact separators, upstream key order and a trailing newline (Go's ``json.Encoder``):
clients compare these strings, and kubectl prints ``message`` after ``Error from server
(<reason>):``.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpResponse

from clusterapi.store.errors import ApiError

JSON = "application/json"


def status_body(error: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
    }
    details = error.details()
    if details:
        body["details"] = details
    body["code"] = error.code
    return body


def error_response(error: ApiError) -> HttpResponse:
    response = HttpResponse(
        orjson.dumps(status_body(error)) + b"\n", status=error.code, content_type=JSON
    )
    if error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return response


def success_status(details: dict[str, Any]) -> dict[str, Any]:
    """The Status a DELETE answers for kinds that do not return the object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> HttpResponse:
    data = body.encode() if isinstance(body, str) else orjson.dumps(body)
    response = HttpResponse(data, status=status, content_type=JSON)
    add_warnings(response, warnings)
    return response


def add_warnings(response: HttpResponse, warnings: list[str] | None) -> None:
    """``Warning: 299 - "..."`` headers, one per warning, as kubectl prints them."""
    if not warnings:
        return
    escaped = [w.replace("\\", "\\\\").replace('"', '\\"') for w in warnings]
    # Django joins repeated headers poorly; one header with comma-separated values is what
    # RFC 7234 allows and client-go parses.
    response["Warning"] = ", ".join(f'299 - "{w}"' for w in escaped)
