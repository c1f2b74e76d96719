"""core/v1 Event: a report of something that happened to an object."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="",
    version="v1",
    kind="Event",
    plural="events",
    short_names=("ev",),
    has_status=False,
    field_selectors={
        "involvedObject.kind": lambda o: str(o.get("involvedObject", {}).get("kind", "")),
        "involvedObject.namespace": lambda o: str(o.get("involvedObject", {}).get("namespace", "")),
        "involvedObject.name": lambda o: str(o.get("involvedObject", {}).get("name", "")),
        "involvedObject.uid": lambda o: str(o.get("involvedObject", {}).get("uid", "")),
        "involvedObject.apiVersion": lambda o: str(
            o.get("involvedObject", {}).get("apiVersion", "")
        ),
        "involvedObject.resourceVersion": lambda o: str(
            o.get("involvedObject", {}).get("resourceVersion", "")
        ),
        "involvedObject.fieldPath": lambda o: str(o.get("involvedObject", {}).get("fieldPath", "")),
        "reason": lambda o: str(o.get("reason", "")),
        "reportingComponent": lambda o: str(o.get("reportingComponent", "")),
        "source": lambda o: str(o.get("source", {}).get("component", "")),
        "type": lambda o: str(o.get("type", "")),
    },
)
