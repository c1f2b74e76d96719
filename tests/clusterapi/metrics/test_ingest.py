"""Only nodes report samples, only for their own nodes and the pods bound to them."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi.authn import User
from clusterapi.core.errors import ApiError
from clusterapi.metrics import ingest, signing
from clusterapi.metrics.models import Sample
from clusterapi.rbac import authorize
from clusterapi.rbac.attributes import from_request
from tests.clusterapi.metrics.conftest import entry, pod_entry

PATH = "/apis/metrics.berth.dev/v1/samples"


def node_user(name: str) -> User:
    return User(f"system:node:{name}", groups=("system:nodes",)).with_authenticated()


def batch(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "metrics.berth.dev/v1", "kind": "SampleBatch", "items": list(items)}


def test_only_nodes_pass_the_authorizer_for_samples(db: None) -> None:
    assert authorize(from_request("POST", PATH, {}, node_user("a"))).allowed
    alice = User("alice").with_authenticated()
    assert not authorize(from_request("POST", PATH, {}, alice)).allowed


def test_a_node_stores_its_own_and_its_pods_samples(cluster: dict[str, Any]) -> None:
    accepted = ingest.ingest(node_user("a"), batch(entry("a", [pod_entry(cluster["pa"])])))
    assert (accepted.nodes, accepted.pods, accepted.skipped_pods) == (1, 1, 0)
    pod = Sample.objects.get(kind=Sample.POD)
    assert (pod.namespace, pod.name, pod.node, pod.cpu) == ("ns", "pa", "a", 1_200_000)
    assert pod.containers == [{"name": "main", "cpu": 1_200_000, "memory": 50 * 1024 * 1024}]
    assert Sample.objects.get(kind=Sample.NODE).name == "a"


def test_a_node_cannot_report_another_nodes_pods(cluster: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        ingest.ingest(node_user("a"), batch(entry("a", [pod_entry(cluster["pb"])])))
    assert caught.value.code == 403
    assert 'pod "ns/pb"' in caught.value.message
    assert not Sample.objects.exists()  # nothing half-written


def test_a_node_cannot_report_for_another_node_unsigned(cluster: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        ingest.ingest(node_user("a"), batch(entry("a"), entry("b")))
    assert caught.value.code == 403
    assert 'for node "b"' in caught.value.message
    assert not Sample.objects.exists()


def test_a_forged_signature_is_refused(cluster: dict[str, Any]) -> None:
    other = entry("b", [pod_entry(cluster["pb"])])
    other["signature"] = signing.sign(signing.key_from_token("not-bs-token"), other)
    with pytest.raises(ApiError) as caught:
        ingest.ingest(node_user("a"), batch(entry("a"), other))
    assert caught.value.code == 403


def test_entries_signed_with_the_nodes_credential_are_accepted(cluster: dict[str, Any]) -> None:
    other = entry("b", [pod_entry(cluster["pb"])])
    other["signature"] = signing.sign(signing.key_from_token(cluster["tokens"]["b"]), other)
    accepted = ingest.ingest(node_user("a"), batch(entry("a"), other))
    assert (accepted.nodes, accepted.pods) == (2, 1)
    # A signature covers the figures: changing one after signing breaks it.
    other["cpu"] += 1
    with pytest.raises(ApiError):
        ingest.ingest(node_user("a"), batch(other))


def test_users_that_are_not_nodes_cannot_report(cluster: dict[str, Any]) -> None:
    admin = User("admin", groups=("system:masters",)).with_authenticated()
    with pytest.raises(ApiError) as caught:
        ingest.ingest(admin, batch(entry("a")))
    assert caught.value.code == 403


def test_pods_deleted_or_recreated_meanwhile_are_skipped(cluster: dict[str, Any]) -> None:
    gone = pod_entry(cluster["pa"])
    gone["name"] = "deleted-pod"
    renamed = pod_entry(cluster["pa"])
    renamed["uid"] = "00000000-0000-0000-0000-000000000000"
    accepted = ingest.ingest(node_user("a"), batch(entry("a", [gone, renamed])))
    assert (accepted.pods, accepted.skipped_pods) == (0, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [("cpu", -1), ("cpu", "1m"), ("window", 0), ("time", 1.0), ("node", "")],
)
def test_malformed_entries_are_bad_requests(
    cluster: dict[str, Any], field: str, value: object
) -> None:
    bad = entry("a")
    bad[field] = value
    with pytest.raises(ApiError) as caught:
        ingest.ingest(node_user("a"), batch(bad))
    assert caught.value.code in (400, 403)
