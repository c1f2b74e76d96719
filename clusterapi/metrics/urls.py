"""Routes of ``/apis/metrics.berth.dev/v1/`` (included by ``clusterapi.api.urls``)."""

from __future__ import annotations

from django.urls import re_path

from clusterapi.metrics import views

urlpatterns = [
    re_path(r"^samples/?$", views.samples),
    re_path(r"^history/nodes/(?P<name>[^/]+)/?$", views.node_history),
    re_path(r"^history/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/?$", views.pod_history),
]
