"""Top-level URLs: the Kubernetes API at the root (as kubectl expects), the dashboard under
``/ui/`` and the admin site under ``/admin/``."""

from django.contrib import admin
from django.urls import include, path

from clusterapi.identity import config as issuer_config

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ui/", include("dashboard.urls")),
    # The dashboard's OIDC login (mozilla-django-oidc; views in dashboard/views.py).
    path("oidc/", include("mozilla_django_oidc.urls")),
    # The built-in OIDC issuer, under its issuer URL's path (``/dex`` by default).
    path(issuer_config.url_prefix(), include("clusterapi.identity.urls")),
    path("", include("clusterapi.api.urls")),
]
