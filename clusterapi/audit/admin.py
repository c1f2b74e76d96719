"""The audit log in the admin site: read-only, for cluster admins."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from clusterapi.audit import log
from clusterapi.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg,unused-ignore]
    list_display = ("timestamp", "user", "verb", "resource", "namespace", "name", "code")
    list_filter = ("verb", "code", "resource")
    search_fields = ("user", "name", "namespace", "request_uri")
    date_hierarchy = "timestamp"

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        log.flush()  # the events this process still holds (batch mode) are shown too
        return super().get_queryset(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)
