"""Table lists served from the rows kept with the objects equal rows computed afresh.

The store keeps each object's Table row at write time; a plain ``kubectl get`` list joins
them and brings the clock-dependent cells up to date. These tests compare that answer with
the Table built by decoding every object and running the printers at the moment of the read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from django.test import RequestFactory

from clusterapi import store
from clusterapi.api import table, views
from clusterapi.api.requests import resolve
from clusterapi.core.models import Resource
from clusterapi.resources import printers, stored_rows
from clusterapi.resources import registered as kind

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


NAMESPACE = kind("v1", "Namespace")
POD = kind("v1", "Pod")
JOB = kind("batch/v1", "Job")
STORAGE_CLASS = kind("storage.k8s.io/v1", "StorageClass")


class Clock:
    def __init__(self) -> None:
        self.moment = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    current = Clock()
    monkeypatch.setattr(printers, "now", current)
    return current


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def list_table(path: str, **params: str) -> Obj:
    request = RequestFactory().get("/" + path, params, HTTP_ACCEPT=TABLE)
    group, version, rest = ("", "v1", path.removeprefix("api/v1/"))
    if path.startswith("apis/"):
        _, group, version, rest = path.split("/", 3)
    response = views.list_(request, resolve(group, version, rest))
    assert response.status_code == 200
    body: Obj = orjson.loads(response.content)
    return body


def computed_table(kind: Any, namespace: str | None) -> Obj:
    objects = store.list_objects(kind, namespace).objects()
    request = RequestFactory().get("/", HTTP_ACCEPT=TABLE)
    built = table.build(kind, objects, request, "0")
    return built


def crashing_pod(name: str, clock: Clock) -> None:
    store.create(
        POD,
        {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        namespace="rows",
    )

    def report(pod: Obj) -> Obj:
        pod["status"] = {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "c",
                    "image": "busybox",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 1,
                            "finishedAt": stamp(clock.moment - timedelta(minutes=3)),
                        }
                    },
                }
            ],
        }
        return pod

    store.guaranteed_update(POD, "rows", name, report, subresource="status")


@pytest.fixture
def namespace() -> str:
    store.create(NAMESPACE, {"metadata": {"name": "rows"}})
    return "rows"


def test_stored_rows_match_rows_computed_at_read_time_as_the_clock_moves(
    namespace: str, clock: Clock
) -> None:
    for index in range(3):
        crashing_pod(f"p{index}", clock)
    store.create(
        JOB,
        {
            "metadata": {"name": "long"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
                }
            },
        },
        namespace=namespace,
    )
    store.guaranteed_update(
        JOB,
        namespace,
        "long",
        lambda job: {**job, "status": {"startTime": stamp(clock.moment), "active": 1}},
        subresource="status",
    )
    kept = Resource.objects.get(resource="pods", name="p0").table_row
    assert kept.startswith(stored_rows.VERSION) and '"$since"' in kept
    for advance in (timedelta(0), timedelta(minutes=7), timedelta(days=3, hours=5)):
        clock.moment += advance
        for listed, path in ((POD, "api/v1/namespaces/rows/pods"), (JOB, "apis/batch/v1/jobs")):
            served = list_table(path)
            expected = computed_table(listed, namespace if listed is POD else None)
            assert served["rows"] == expected["rows"]
            assert served["columnDefinitions"] == expected["columnDefinitions"]
    pod_row = list_table("api/v1/namespaces/rows/pods")["rows"][0]["cells"]
    assert pod_row[2] == "CrashLoopBackOff"
    assert pod_row[3] == "4 (3d5h ago)"
    assert pod_row[4] == "3d5h"


def test_rows_kept_by_an_older_printer_are_recomputed(namespace: str, clock: Clock) -> None:
    crashing_pod("old", clock)
    Resource.objects.filter(resource="pods", name="old").update(
        table_row='0000000000000000{"cells":["stale"],"object":{}}'
    )
    served = list_table("api/v1/namespaces/rows/pods")
    assert served["rows"] == computed_table(POD, namespace)["rows"]
    assert served["rows"][0]["cells"][0] == "old"


def test_text_that_looks_like_a_marker_is_served_as_written(namespace: str, clock: Clock) -> None:
    lookalike = '{"$since":1,"f":"{}"}'
    store.create(
        POD,
        {
            "metadata": {"name": "tricky", "annotations": {"note": lookalike}},
            "spec": {"containers": [{"name": "c", "image": lookalike}]},
        },
        namespace=namespace,
    )
    served = list_table("api/v1/namespaces/rows/pods")
    assert served["rows"][0]["object"]["metadata"]["annotations"]["note"] == lookalike
    assert served["rows"] == computed_table(POD, namespace)["rows"]


def test_filtered_paged_and_other_forms_are_still_computed(namespace: str, clock: Clock) -> None:
    for index in range(4):
        crashing_pod(f"p{index}", clock)
    paged = list_table("api/v1/namespaces/rows/pods", limit="3")
    assert [r["cells"][0] for r in paged["rows"]] == ["p0", "p1", "p2"]
    assert paged["metadata"]["continue"]
    rest = list_table(
        "api/v1/namespaces/rows/pods", limit="3", **{"continue": paged["metadata"]["continue"]}
    )
    assert [r["cells"][0] for r in rest["rows"]] == ["p3"]
    selected = list_table("api/v1/namespaces/rows/pods", fieldSelector="metadata.name=p2")
    assert [r["cells"][0] for r in selected["rows"]] == ["p2"]
    whole = list_table("api/v1/namespaces/rows/pods", includeObject="Object")
    assert whole["rows"][0]["object"]["kind"] == "Pod"


def test_storage_classes_are_not_kept_and_still_mark_the_default(db: None) -> None:
    assert not stored_rows.stored("StorageClass")
    for name, default in (("fast", "true"), ("slow", "false")):
        store.create(
            STORAGE_CLASS,
            {
                "metadata": {
                    "name": name,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": default},
                },
                "provisioner": "berth.dev/local",
            },
        )
    assert Resource.objects.get(resource="storageclasses", name="fast").table_row == ""
    served = list_table("apis/storage.k8s.io/v1/storageclasses")
    assert [r["cells"][0] for r in served["rows"]] == ["fast (default)", "slow"]
