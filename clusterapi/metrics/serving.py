"""``metrics.k8s.io/v1beta1`` NodeMetrics and PodMetrics, computed from the newest samples.

These are the ``reader`` functions of the two computed kinds
(``clusterapi.resources.kinds.nodemetrics``/``podmetrics``): the API serves them for ``get``
and ``list`` only (``clusterapi.api.computed``), as metrics-server does. Each object is the
newest sample of a Node or Pod that exists now, unless that sample is older than
``BERTH_METRICS_STALENESS_SECONDS``; name, namespace and labels come from the current object
(so label selectors select by the Node's or Pod's labels, as upstream), figures are
formatted as metrics-server formats them (``clusterapi.metrics.formatting``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from clusterapi import store
from clusterapi.metrics import config, formatting
from clusterapi.metrics.models import Sample

Obj = dict[str, Any]


def _cutoff() -> datetime:
    return timezone.now() - timedelta(seconds=config.staleness_seconds())


def _newest(kind: str, namespace: str, name: str) -> dict[tuple[str, str], Sample]:
    """(namespace, name) → the newest fresh sample, for one object or all (in a namespace)."""
    rows = Sample.objects.filter(kind=kind, time__gte=_cutoff())
    if namespace:
        rows = rows.filter(namespace=namespace)
    if name:
        rows = rows.filter(name=name)
    newest: dict[tuple[str, str], Sample] = {}
    for sample in rows.order_by("-time").only(
        "namespace", "name", "uid", "time", "window", "cpu", "memory", "containers"
    ):
        newest.setdefault((sample.namespace, sample.name), sample)
    return newest


def _metadata(obj: Obj, created: str) -> Obj:
    meta = obj.get("metadata") or {}
    out: Obj = {"name": meta.get("name", "")}
    if meta.get("namespace"):
        out["namespace"] = meta["namespace"]
    out["creationTimestamp"] = created
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    return out


def _usage(cpu: int, memory: int) -> Obj:
    return {"cpu": formatting.cpu_quantity(cpu), "memory": formatting.memory_quantity(memory)}


def _current(kind_name: str, namespace: str, name: str) -> Iterable[Obj]:
    from clusterapi.resources import by_kind

    kind = by_kind("v1", kind_name)
    if kind is None:
        raise LookupError(f"v1 {kind_name} is not registered")
    return store.list_objects(kind, namespace or None, name=name or None).objects()


def read_nodes(namespace: str, name: str) -> list[Obj]:
    """NodeMetrics items (without kind and apiVersion), in name order."""
    samples = _newest(Sample.NODE, "", name)
    created = formatting.timestamp(timezone.now())
    out = []
    for node in _current("Node", "", name):
        sample = samples.get(("", node["metadata"]["name"]))
        if sample is None:
            continue
        out.append(
            {
                "metadata": _metadata(node, created),
                "timestamp": formatting.timestamp(sample.time),
                "window": formatting.window(sample.window),
                "usage": _usage(sample.cpu, sample.memory),
            }
        )
    return out


def read_pods(namespace: str, name: str) -> list[Obj]:
    """PodMetrics items (without kind and apiVersion), in namespace and name order."""
    samples = _newest(Sample.POD, namespace, name)
    created = formatting.timestamp(timezone.now())
    out = []
    for pod in _current("Pod", namespace, name):
        meta = pod["metadata"]
        sample = samples.get((meta.get("namespace", ""), meta["name"]))
        if sample is None or (sample.uid and sample.uid != meta.get("uid")):
            continue
        out.append(
            {
                "metadata": _metadata(pod, created),
                "timestamp": formatting.timestamp(sample.time),
                "window": formatting.window(sample.window),
                "containers": [
                    {"name": c["name"], "usage": _usage(c["cpu"], c["memory"])}
                    for c in sample.containers
                ],
            }
        )
    return out


def history(kind: str, namespace: str, name: str, since_seconds: float, step: float) -> list[Obj]:
    """The series of one node or pod: ``[{"time", "window", "cpu", "memory"}]`` oldest first,
    cpu in nanocores and memory in bytes; with ``step`` > 0, averaged into buckets of that many
    seconds (the dashboard's 15 s resolution whatever the agents' interval)."""
    since = timezone.now() - timedelta(seconds=since_seconds)
    rows = (
        Sample.objects.filter(kind=kind, namespace=namespace, name=name, time__gte=since)
        .order_by("time")
        .values_list("time", "window", "cpu", "memory")
    )
    if step <= 0:
        return [
            {"time": formatting.timestamp(t), "window": w, "cpu": c, "memory": m}
            for t, w, c, m in rows
        ]
    buckets: dict[int, list[tuple[float, int, int]]] = {}
    for moment, window, cpu, memory in rows:
        buckets.setdefault(int(moment.timestamp() // step), []).append((window, cpu, memory))
    out = []
    for index in sorted(buckets):
        points = buckets[index]
        end = datetime.fromtimestamp((index + 1) * step, UTC)
        out.append(
            {
                "time": formatting.timestamp(end),
                "window": round(sum(p[0] for p in points), 3),
                "cpu": sum(p[1] for p in points) // len(points),
                "memory": sum(p[2] for p in points) // len(points),
            }
        )
    return out
