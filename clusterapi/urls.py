"""Top-level URLs: the Kubernetes API at the root (as kubectl expects), the dashboard under
``/ui/`` and the admin site under ``/admin/``."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ui/", include("dashboard.urls")),
    path("", include("clusterapi.api.urls")),
]
