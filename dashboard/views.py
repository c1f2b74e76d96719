"""Dashboard pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from clusterapi.resources import KINDS


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/index.html", {"kinds": KINDS})
