"""Dashboard pages. Every page asks the one RBAC authorizer, as the API does."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.shortcuts import render

from clusterapi.authn.chain import session_user
from clusterapi.rbac import Attributes, authorize, forbidden_message
from clusterapi.resources import KINDS


def index(request: HttpRequest) -> HttpResponse:
    user = session_user(request)
    if user is None:
        return HttpResponseRedirect("/admin/login/?" + urlencode({"next": request.path}))
    attrs = Attributes.for_path(user, "get", request.path)
    if not authorize(attrs).allowed:
        return HttpResponseForbidden(forbidden_message(attrs))
    return render(request, "dashboard/index.html", {"kinds": KINDS, "user": user})
