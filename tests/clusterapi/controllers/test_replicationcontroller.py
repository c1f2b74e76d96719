"""The ReplicationController controller: the ReplicaSet loop with a map selector."""

from __future__ import annotations

import pytest

from clusterapi import store
from clusterapi.controllers import replicationcontroller
from tests.clusterapi.controllers.conftest import NS, POD, RC, get, pods_of, template, update

pytestmark = pytest.mark.django_db


def test_it_keeps_its_replicas_selected_by_a_label_map(ns: str) -> None:
    rc = store.create(
        RC,
        {
            "metadata": {"name": "legacy"},
            "spec": {
                "replicas": 2,
                "selector": {"app": "legacy"},
                "template": template({"app": "legacy"}),
            },
        },
        namespace=NS,
    ).obj
    assert replicationcontroller.reconcile(NS, "legacy") is None
    created = pods_of(rc)
    assert len(created) == 2
    ref = created[0]["metadata"]["ownerReferences"][0]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        "v1",
        "ReplicationController",
        "legacy",
    )
    # A lost pod is replaced.
    store.delete(POD, NS, created[0]["metadata"]["name"])
    replicationcontroller.reconcile(NS, "legacy")
    assert len(pods_of(rc)) == 2
    status = get(RC, "legacy")["status"]
    # core/v1 has no terminatingReplicas.
    assert status == {"replicas": 2, "fullyLabeledReplicas": 2, "observedGeneration": 1}
    update(RC, "legacy", lambda r: r["spec"].update(replicas=0))
    replicationcontroller.reconcile(NS, "legacy")
    assert pods_of(rc) == []


def test_the_selector_defaults_from_the_template(ns: str) -> None:
    rc = store.create(
        RC,
        {
            "metadata": {"name": "legacy"},
            "spec": {"replicas": 1, "template": template({"app": "legacy"})},
        },
        namespace=NS,
    ).obj
    assert rc["spec"]["selector"] == {"app": "legacy"}
    replicationcontroller.reconcile(NS, "legacy")
    assert len(pods_of(rc)) == 1
