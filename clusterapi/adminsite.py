"""The admin site, authorized by the one RBAC authorizer.

Django's admin normally lets in any active staff user. Berth asks RBAC instead, with the
same attributes a non-resource API request would carry (``get`` on the admin path): the
session's user (Django superusers act in ``system:masters``; Django groups are RBAC groups)
needs a ClusterRole with ``nonResourceURLs: ["/admin/*"]`` (cluster-admin has ``*``). Per-model
permissions then apply as usual (the audit log, for one, is for superusers only).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class BerthAdminSite(admin.AdminSite):
    site_header = "Berth administration"
    site_title = "Berth admin"

    def has_permission(self, request: HttpRequest) -> bool:
        from clusterapi.authn.chain import session_user
        from clusterapi.rbac import Attributes, authorize

        if not (request.user.is_active and request.user.is_authenticated):
            return False
        user = session_user(request)
        if user is None:
            return False
        return authorize(Attributes.for_path(user, "get", request.path)).allowed


class BerthAdminConfig(AdminConfig):
    default_site = "clusterapi.adminsite.BerthAdminSite"
