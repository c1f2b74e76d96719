"""Stored resource samples: the newest serves ``kubectl top``, the rest the dashboard's history."""

from __future__ import annotations

from django.db import models


class Sample(models.Model):
    """One node's or pod's usage over one sampling window, as its node agent measured it.

    ``time`` is the end of the window; ``cpu`` is the mean usage over it in nanocores and
    ``memory`` the working set at its end in bytes. A pod's ``containers`` holds the same two
    figures per container (``[{"name", "cpu", "memory"}]``); ``cpu``/``memory`` are their sums.
    Rows are written in bulk by ``clusterapi.metrics.ingest`` and pruned past
    ``BERTH_METRICS_RETENTION_SECONDS`` by ``clusterapi.metrics.tasks``: they are
    measurements, not API objects, so they never pass through the store.
    """

    NODE = "node"
    POD = "pod"
    KINDS = ((NODE, "Node"), (POD, "Pod"))

    kind = models.CharField(max_length=4, choices=KINDS)
    namespace = models.CharField(max_length=253, blank=True)
    name = models.CharField(max_length=253)
    # The pod's uid (a pod recreated under the same name starts a new series); "" for nodes.
    uid = models.CharField(max_length=36, blank=True)
    # The node the sample was taken on (for pods: the node they ran on then).
    node = models.CharField(max_length=253)
    time = models.DateTimeField()
    window = models.FloatField()
    cpu = models.BigIntegerField()
    memory = models.BigIntegerField()
    containers = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["kind", "namespace", "name", "time"], name="sample_by_object"),
            models.Index(fields=["time"], name="sample_by_time"),
        ]

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where} @ {self.time.isoformat()}"
