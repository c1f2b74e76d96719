"""The service account controller and the pod's default service account."""

from __future__ import annotations

import pytest

from clusterapi import store
from clusterapi.controllers import serviceaccount
from clusterapi.store.errors import ApiError
from tests.clusterapi.controllers.conftest import NAMESPACE, NS, POD, kind

pytestmark = pytest.mark.django_db

ACCOUNT = kind("v1", "ServiceAccount")


def test_every_namespace_gets_default_and_gets_it_back(ns: str) -> None:
    assert serviceaccount.reconcile("", NS) is None
    assert store.get(ACCOUNT, NS, "default")["metadata"]["name"] == "default"
    store.delete(ACCOUNT, NS, "default")
    assert serviceaccount.CONTROLLER.keys_for(
        "ServiceAccount", {"metadata": {"name": "default", "namespace": NS}}
    ) == [("", NS)]
    serviceaccount.reconcile("", NS)
    assert store.get(ACCOUNT, NS, "default")
    # Idempotent.
    assert serviceaccount.reconcile("", NS) is None


def test_a_terminating_or_missing_namespace_is_left_alone(ns: str) -> None:
    assert serviceaccount.reconcile("", "absent") is None
    store.create(NAMESPACE, {"metadata": {"name": "going"}})
    store.delete(NAMESPACE, "", "going")
    serviceaccount.reconcile("", "going")
    with pytest.raises(ApiError):
        store.get(ACCOUNT, "going", "default")


def test_pods_default_to_the_default_service_account(ns: str) -> None:
    pod = store.create(
        POD,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        namespace=NS,
    ).obj
    assert pod["spec"]["serviceAccountName"] == "default"
    named = store.create(
        POD,
        {
            "metadata": {"name": "q"},
            "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "x"}]},
        },
        namespace=NS,
    ).obj
    assert named["spec"]["serviceAccountName"] == "robot"
