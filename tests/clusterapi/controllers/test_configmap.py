"""The root CA publisher: ``kube-root-ca.crt`` in every namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusterapi import store
from clusterapi.controllers import BY_NAME, configmap
from clusterapi.store.errors import ApiError
from tests.clusterapi.controllers.conftest import CONFIGMAP, NAMESPACE, NS

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    """A data directory of the test's own: a CA generated for it."""
    settings.DATA_DIR = tmp_path
    return tmp_path


def test_every_namespace_gets_the_ca_and_gets_it_back(ns: str, data_dir: Path) -> None:
    assert configmap.reconcile("", NS) is None
    published = store.get(CONFIGMAP, NS, "kube-root-ca.crt")
    ca = (data_dir / "pki" / "ca.crt").read_text()
    assert published["data"] == {"ca.crt": ca}
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    assert published["metadata"]["annotations"]["kubernetes.io/description"]
    # Idempotent: nothing is written the second time.
    version = published["metadata"]["resourceVersion"]
    configmap.reconcile("", NS)
    assert store.get(CONFIGMAP, NS, "kube-root-ca.crt")["metadata"]["resourceVersion"] == version

    # Deleted: a change to it wakes its namespace, which puts it back.
    store.delete(CONFIGMAP, NS, "kube-root-ca.crt")
    assert configmap.CONTROLLER.keys_for(
        "ConfigMap", {"metadata": {"name": "kube-root-ca.crt", "namespace": NS}}
    ) == [("", NS)]
    assert (
        configmap.CONTROLLER.keys_for("ConfigMap", {"metadata": {"name": "other", "namespace": NS}})
        == []
    )
    configmap.reconcile("", NS)
    assert store.get(CONFIGMAP, NS, "kube-root-ca.crt")["data"] == {"ca.crt": ca}


def test_edited_data_is_put_back(ns: str, data_dir: Path) -> None:
    configmap.reconcile("", NS)
    edited = store.get(CONFIGMAP, NS, "kube-root-ca.crt")
    edited["data"] = {"ca.crt": "forged", "extra": "x"}
    edited["metadata"]["annotations"] = {"mine": "kept"}
    store.update(CONFIGMAP, NS, "kube-root-ca.crt", edited)
    configmap.reconcile("", NS)
    fixed = store.get(CONFIGMAP, NS, "kube-root-ca.crt")
    assert fixed["data"] == {"ca.crt": (data_dir / "pki" / "ca.crt").read_text()}
    assert fixed["metadata"]["annotations"]["mine"] == "kept"
    assert "kubernetes.io/description" in fixed["metadata"]["annotations"]


def test_missing_or_terminating_namespaces_are_left_alone(ns: str, data_dir: Path) -> None:
    assert configmap.reconcile("", "absent") is None
    store.create(NAMESPACE, {"metadata": {"name": "going"}})
    store.delete(NAMESPACE, "", "going")
    configmap.reconcile("", "going")
    with pytest.raises(ApiError):
        store.get(CONFIGMAP, "going", "kube-root-ca.crt")


def test_registered_in_the_controllers_table() -> None:
    assert BY_NAME["root-ca-cert-publisher"] is configmap.CONTROLLER
    assert configmap.CONTROLLER.kind == "Namespace"
