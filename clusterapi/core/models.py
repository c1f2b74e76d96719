"""Tables of the object store. Written only through ``clusterapi.store``."""

from __future__ import annotations

from django.db import models


class Revision(models.Model):
    """The one global revision counter (a single row, id 1)."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"revision {self.value}"


class Resource(models.Model):
    """One stored API object, keyed by (API group, resource plural, namespace, name)."""

    group = models.CharField(max_length=253, blank=True)
    resource = models.CharField(max_length=100)
    namespace = models.CharField(max_length=253, blank=True)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=36, db_index=True)
    revision = models.BigIntegerField()
    # The object's JSON as served (apiVersion, kind, metadata with resourceVersion, ...).
    data = models.TextField()
    # The object's Table row as kubectl's lists are served, kept current by every write
    # (``clusterapi.resources.stored_rows``); empty for kinds whose rows are not kept.
    table_row = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "resource", "namespace", "name"], name="resource_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}/{self.namespace}/{self.name}"


class Change(models.Model):
    """One committed write, kept so watches can resume from a revision."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    TYPES = [(t, t) for t in (ADDED, MODIFIED, DELETED)]

    revision = models.BigIntegerField(primary_key=True)
    group = models.CharField(max_length=253, blank=True)
    resource = models.CharField(max_length=100)
    namespace = models.CharField(max_length=253, blank=True)
    name = models.CharField(max_length=253)
    type = models.CharField(max_length=8, choices=TYPES)
    data = models.TextField()
    # The object before a modification, so a selector-filtered watch can tell an object that
    # stopped matching (sent as DELETED) from one it never saw.
    previous = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["resource", "group", "revision"], name="change_by_kind")]

    def __str__(self) -> str:
        return f"{self.revision} {self.type} {self.resource}/{self.namespace}/{self.name}"


class Compaction(models.Model):
    """The oldest revision a watch may still resume from (a single row, id 1)."""

    revision = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"compacted before {self.revision}"


class ApiToken(models.Model):
    """A bearer token for the API: stored as a SHA-256 digest, never in the clear."""

    digest = models.CharField(max_length=64, unique=True)
    username = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    groups = models.JSONField(default=list)
    description = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token for {self.username}"
