"""metrics.k8s.io/v1beta1 served as metrics-server serves it, discovered as kubectl top expects,
and the history API; through the real URL routes, authentication and RBAC."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from clusterapi.authn import tokens
from clusterapi.metrics import ingest
from clusterapi.metrics.models import Sample
from clusterapi.rbac import bootstrap
from tests.clusterapi.metrics.conftest import entry, pod_entry
from tests.clusterapi.metrics.test_ingest import batch, node_user
from tests.clusterapi.rbac.helpers import binding, user_subject

pytestmark = pytest.mark.django_db(transaction=True)
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def get(token: str, path: str, **headers: Any) -> Any:
    return Client().get(path, secure=True, HTTP_AUTHORIZATION=f"Bearer {token}", **headers)


@pytest.fixture
def admin() -> str:
    return tokens.create("admin", ["system:masters"])


@pytest.fixture
def reported(cluster: dict[str, Any]) -> dict[str, Any]:
    ingest.ingest(node_user("a"), batch(entry("a", [pod_entry(cluster["pa"])], cpu=5_000_000)))
    ingest.ingest(node_user("b"), batch(entry("b", [pod_entry(cluster["pb"], cpu=12345)])))
    return cluster


def test_discovery_lists_the_metrics_group(admin: str) -> None:
    groups = get(admin, "/apis").json()
    entry_ = next(g for g in groups["groups"] if g["name"] == "metrics.k8s.io")
    assert entry_["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    resources = get(admin, "/apis/metrics.k8s.io/v1beta1").json()["resources"]
    assert {(r["name"], r["kind"], r["namespaced"], tuple(r["verbs"])) for r in resources} == {
        ("nodes", "NodeMetrics", False, ("get", "list")),
        ("pods", "PodMetrics", True, ("get", "list")),
    }
    aggregated = get(admin, "/apis", HTTP_ACCEPT=AGGREGATED).json()
    group = next(i for i in aggregated["items"] if i["metadata"]["name"] == "metrics.k8s.io")
    kinds = {r["responseKind"]["kind"] for r in group["versions"][0]["resources"]}
    assert kinds == {"NodeMetrics", "PodMetrics"}
    # No schema to publish: the OpenAPI document of the group lists no paths.
    assert get(admin, "/openapi/v3/apis/metrics.k8s.io/v1beta1").json()["paths"] == {}


def test_node_metrics_are_the_newest_samples(admin: str, reported: dict[str, Any]) -> None:
    body = get(admin, "/apis/metrics.k8s.io/v1beta1/nodes").json()
    assert body["kind"] == "NodeMetricsList"
    assert body["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert body["metadata"] == {}
    items = {i["metadata"]["name"]: i for i in body["items"]}
    assert set(items) == {"a", "b"}
    assert items["a"]["usage"] == {"cpu": "5m", "memory": "1Gi"}
    assert items["a"]["window"] == "15.004s"
    assert items["a"]["metadata"]["labels"] == {"zone": "z1"}
    one = get(admin, "/apis/metrics.k8s.io/v1beta1/nodes/b").json()
    assert one["kind"] == "NodeMetrics"
    assert one["timestamp"].endswith("Z")
    selected = get(admin, "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Dz2").json()
    assert [i["metadata"]["name"] for i in selected["items"]] == ["b"]


def test_pod_metrics_list_get_and_select(admin: str, reported: dict[str, Any]) -> None:
    body = get(admin, "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods").json()
    assert body["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in body["items"]] == ["pa", "pb"]
    pb = get(admin, "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/pb").json()
    assert pb["kind"] == "PodMetrics"
    assert pb["metadata"]["namespace"] == "ns"
    assert pb["containers"] == [{"name": "main", "usage": {"cpu": "12345n", "memory": "50Mi"}}]
    everywhere = get(admin, "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb").json()
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["pa"]
    missing = get(admin, "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/nope")
    assert missing.status_code == 404


def test_stale_samples_and_samples_of_other_pod_incarnations_are_not_served(
    admin: str, reported: dict[str, Any]
) -> None:
    Sample.objects.filter(name="a").update(time=timezone.now() - timedelta(minutes=10))
    names = [
        i["metadata"]["name"]
        for i in get(admin, "/apis/metrics.k8s.io/v1beta1/nodes").json()["items"]
    ]
    assert names == ["b"]
    Sample.objects.filter(name="pb").update(uid="another-uid")
    assert get(admin, "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/pb").status_code == 404


def test_writes_and_watches_are_not_allowed(admin: str, reported: dict[str, Any]) -> None:
    client = Client()
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {admin}"}
    created = client.post(
        "/apis/metrics.k8s.io/v1beta1/nodes",
        "{}",
        content_type="application/json",
        secure=True,
        **auth,
    )
    assert created.status_code == 405
    watched = get(admin, "/apis/metrics.k8s.io/v1beta1/nodes?watch=1")
    assert watched.status_code == 405


def test_viewers_may_read_metrics_and_history_and_strangers_may_not(
    reported: dict[str, Any],
) -> None:
    from clusterapi import store
    from clusterapi.resources import by_kind

    bootstrap.reconcile()
    kind = by_kind("rbac.authorization.k8s.io/v1", "RoleBinding")
    assert kind is not None
    store.create(kind, binding("ns", "v", "view", user_subject("viewer")), namespace="ns")
    viewer = tokens.create("viewer")
    stranger = tokens.create("stranger")
    path = "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods"
    assert get(viewer, path).status_code == 200
    assert get(stranger, path).status_code == 403
    history = "/apis/metrics.berth.dev/v1/history/namespaces/ns/pods/pa"
    answer = get(viewer, history)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["kind"] == "PodMetricsHistory"
    assert [(p["cpu"], p["memory"]) for p in body["points"]] == [(1_200_000, 50 * 1024 * 1024)]
    assert get(stranger, history).status_code == 403
    # Nodes are cluster-scoped: a namespaced view binding does not show them.
    assert get(viewer, "/apis/metrics.berth.dev/v1/history/nodes/a").status_code == 403


def test_node_history_is_a_series_at_the_asked_step(admin: str, cluster: dict[str, Any]) -> None:
    now = timezone.now()
    Sample.objects.bulk_create(
        Sample(
            kind=Sample.NODE,
            name="a",
            node="a",
            time=now - timedelta(seconds=s),
            window=1.0,
            cpu=1_000_000 * s,
            memory=4096,
        )
        for s in range(1, 121)
    )
    raw = get(admin, "/apis/metrics.berth.dev/v1/history/nodes/a?step=0&sinceSeconds=60").json()
    assert 58 <= len(raw["points"]) <= 60
    assert raw["points"][0]["time"] <= raw["points"][-1]["time"]
    stepped = get(admin, "/apis/metrics.berth.dev/v1/history/nodes/a").json()
    assert stepped["stepSeconds"] == 15
    assert 8 <= len(stepped["points"]) <= 9
    assert all(p["memory"] == 4096 for p in stepped["points"])


def test_samples_over_http_need_a_node_identity(cluster: dict[str, Any]) -> None:
    import json

    body = json.dumps(batch(entry("a", [pod_entry(cluster["pa"])])))
    path = "/apis/metrics.berth.dev/v1/samples"
    client = Client()
    ok = client.post(
        path,
        body,
        content_type="application/json",
        secure=True,
        HTTP_AUTHORIZATION=f"Bearer {cluster['tokens']['a']}",
    )
    assert ok.status_code == 201, ok.content
    assert ok.json()["status"] == {"nodes": 1, "pods": 1, "skippedPods": 0}
    wrong = client.post(
        path,
        body,
        content_type="application/json",
        secure=True,
        HTTP_AUTHORIZATION=f"Bearer {cluster['tokens']['b']}",
    )
    assert wrong.status_code == 403
    alice = tokens.create("alice")
    refused = client.post(
        path,
        body,
        content_type="application/json",
        secure=True,
        HTTP_AUTHORIZATION=f"Bearer {alice}",
    )
    assert refused.status_code == 403


def test_kubectl_get_gets_a_table(admin: str, reported: dict[str, Any]) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    table = get(admin, "/apis/metrics.k8s.io/v1beta1/nodes", HTTP_ACCEPT=accept).json()
    assert table["kind"] == "Table"
    assert [r["object"]["metadata"]["name"] for r in table["rows"]] == ["a", "b"]
