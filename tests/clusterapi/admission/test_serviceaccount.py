"""The ServiceAccount admission plugin: default account and the projected token volume."""

from __future__ import annotations

import re
from typing import Any

import pytest

from clusterapi import store
from clusterapi.admission import serviceaccount
from clusterapi.resources import registered as kind

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]
NS = "sa-admission"
PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


POD = kind("v1", "Pod")
ACCOUNT = kind("v1", "ServiceAccount")
NAMESPACE = kind("v1", "Namespace")


@pytest.fixture
def ns() -> str:
    store.create(NAMESPACE, {"metadata": {"name": NS}})
    return NS


def create(name: str, **spec: Any) -> Obj:
    spec.setdefault("containers", [{"name": "c", "image": "x"}])
    return store.create(POD, {"metadata": {"name": name}, "spec": spec}, namespace=NS).obj


def test_a_pod_gets_default_and_the_upstream_token_volume_in_every_container(ns: str) -> None:
    pod = create(
        "p",
        initContainers=[{"name": "i", "image": "x"}],
        containers=[{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
    )
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    assert spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", volume["name"])
    assert volume["projected"] == {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }
    for container in [*spec["initContainers"], *spec["containers"]]:
        assert container["volumeMounts"] == [
            {"name": volume["name"], "readOnly": True, "mountPath": PATH}
        ]


def test_a_named_account_is_kept(ns: str) -> None:
    assert create("named", serviceAccountName="robot")["spec"]["serviceAccountName"] == "robot"
    # The deprecated field names it too.
    assert create("old", serviceAccount="bot")["spec"]["serviceAccountName"] == "bot"


def test_automount_false_on_the_pod_or_the_account_mounts_nothing(ns: str) -> None:
    pod = create("off", automountServiceAccountToken=False)
    assert "volumes" not in pod["spec"]
    assert "volumeMounts" not in pod["spec"]["containers"][0]
    store.create(
        ACCOUNT,
        {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False},
        namespace=NS,
    )
    quiet = create("quiet", serviceAccountName="quiet")
    assert "volumes" not in quiet["spec"]
    # The pod's own setting wins over the account's.
    loud = create("loud", serviceAccountName="quiet", automountServiceAccountToken=True)
    assert loud["spec"]["volumes"][0]["name"].startswith("kube-api-access-")


def test_a_container_with_its_own_mount_there_keeps_it(ns: str) -> None:
    own = {"name": "mine", "mountPath": PATH}
    pod = create(
        "own",
        volumes=[{"name": "mine", "emptyDir": {}}],
        containers=[
            {"name": "a", "image": "x", "volumeMounts": [own]},
            {"name": "b", "image": "x"},
        ],
    )
    a, b = pod["spec"]["containers"]
    assert a["volumeMounts"] == [own]
    assert b["volumeMounts"][0]["mountPath"] == PATH
    assert len(pod["spec"]["volumes"]) == 2
    # Every container has its own: no token volume at all.
    alone = create(
        "alone",
        volumes=[{"name": "mine", "emptyDir": {}}],
        containers=[{"name": "a", "image": "x", "volumeMounts": [own]}],
    )
    assert [v["name"] for v in alone["spec"]["volumes"]] == ["mine"]


def test_updates_and_mirror_pods_are_left_alone(ns: str) -> None:
    pod = create("p")
    volumes = pod["spec"]["volumes"]
    pod["metadata"]["labels"] = {"a": "b"}
    updated = store.update(POD, NS, "p", pod).obj
    assert updated["spec"]["volumes"] == volumes
    mirror = store.create(
        POD,
        {
            "metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "x"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
        namespace=NS,
    ).obj
    assert "volumes" not in mirror["spec"]


def test_pure_helpers() -> None:
    spec: Obj = {"containers": [{"name": "c"}], "volumes": [{"name": "kube-api-access-abcde"}]}
    serviceaccount.mount_token(spec)
    # An existing kube-api-access volume is reused, not added again.
    assert spec["containers"][0]["volumeMounts"][0]["name"] == "kube-api-access-abcde"
    assert len(spec["volumes"]) == 1
    assert serviceaccount.should_automount({}, None)
    assert not serviceaccount.should_automount({}, {"automountServiceAccountToken": False})
