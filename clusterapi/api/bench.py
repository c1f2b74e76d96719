"""The benchmark's reference view: plain synchronous Django returning an empty JSON object.

Routed at ``/_bench/empty`` only when the environment has ``BERTH_BENCH=1`` (see
``clusterapi.api.urls``). ``bench/api.py`` measures its request rate on the same server
process, with the same client, as the yardstick for the API's own GETs and creates: it is
the cost of uvicorn + TLS + Django's own ASGI request handling (``clusterapi.asgi`` serves
``/_bench/`` with Django's handler, without middleware, not the API's leaner one) with no
API work at all.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, re_path


def empty(request: HttpRequest) -> JsonResponse:
    """``{}``: no authentication, no database, no API logic."""
    return JsonResponse({})


def routes(environ: Mapping[str, str]) -> list[URLPattern]:
    """The reference route, present only when ``environ`` has ``BERTH_BENCH=1``."""
    if environ.get("BERTH_BENCH") != "1":
        return []
    return [re_path(r"^_bench/empty/?$", empty)]
