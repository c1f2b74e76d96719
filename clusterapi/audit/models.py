"""The audit log's table."""

from __future__ import annotations

from django.db import models


class AuditEvent(models.Model):
    """One audited request."""

    timestamp = models.DateTimeField(db_index=True)
    user = models.CharField(max_length=253, db_index=True)
    groups = models.JSONField(default=list)
    impersonator = models.CharField(max_length=253, blank=True)
    verb = models.CharField(max_length=32)
    api_group = models.CharField(max_length=253, blank=True)
    resource = models.CharField(max_length=100, blank=True)
    subresource = models.CharField(max_length=100, blank=True)
    namespace = models.CharField(max_length=253, blank=True)
    name = models.CharField(max_length=253, blank=True)
    request_uri = models.TextField()
    code = models.PositiveSmallIntegerField()
    # A JSON patch from the old object to the new one, for updates and patches.
    diff = models.JSONField(null=True, blank=True)
    source_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        when = f"{self.timestamp:%Y-%m-%dT%H:%M:%SZ}"
        return f"{when} {self.user} {self.verb} {self.resource} {self.code}"

    def to_json(self) -> dict[str, object]:
        return {
            "timestamp": self.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "user": {"username": self.user, "groups": self.groups},
            "impersonatedBy": self.impersonator or None,
            "verb": self.verb,
            "objectRef": {
                "apiGroup": self.api_group,
                "resource": self.resource,
                "subresource": self.subresource,
                "namespace": self.namespace,
                "name": self.name,
            },
            "requestURI": self.request_uri,
            "responseStatus": {"code": self.code},
            "diff": self.diff,
            "sourceIP": self.source_ip,
            "userAgent": self.user_agent,
        }
