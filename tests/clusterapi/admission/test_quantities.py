"""Numbers given where a quantity belongs are stored as the strings upstream would store.

Clients' typed models (the Python client, kubectl's structured output) require quantities to
be strings, so ``cpu: 0.5`` is kept as ``"500m"``. Admission only walks the parts of an object
under which a quantity can occur; these tests cover quantities deep in pods and in other
kinds, and numbers elsewhere that must be left alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.resources import registered as kind

pytestmark = pytest.mark.django_db


NAMESPACE = kind("v1", "Namespace")
POD = kind("v1", "Pod")
QUOTA = kind("v1", "ResourceQuota")
LIMITS = kind("v1", "LimitRange")


@pytest.fixture(autouse=True)
def namespace() -> None:
    store.create(NAMESPACE, {"metadata": {"name": "q"}})


def test_container_and_init_container_quantities_become_strings() -> None:
    container: dict[str, Any] = {
        "name": "c",
        "image": "x",
        "resources": {"requests": {"cpu": 0.5, "memory": 1024}, "limits": {"cpu": 2}},
        "ports": [{"containerPort": 80}],
    }
    pod = store.create(
        POD,
        {
            "metadata": {"name": "p"},
            "spec": {
                "containers": [container],
                "initContainers": [{**container, "name": "i"}],
                "terminationGracePeriodSeconds": 5,
                "overhead": {"cpu": 0.25},
            },
        },
        namespace="q",
    ).obj
    spec = pod["spec"]
    for c in (spec["containers"][0], spec["initContainers"][0]):
        assert c["resources"] == {
            "requests": {"cpu": "500m", "memory": "1024"},
            "limits": {"cpu": "2"},
        }
        assert c["ports"][0]["containerPort"] == 80
    assert spec["overhead"] == {"cpu": "250m"}
    assert spec["terminationGracePeriodSeconds"] == 5


def test_quota_and_limit_range_quantities_become_strings() -> None:
    quota = store.create(
        QUOTA,
        {"metadata": {"name": "r"}, "spec": {"hard": {"pods": 10, "requests.cpu": 1.5}}},
        namespace="q",
    ).obj
    assert quota["spec"]["hard"] == {"pods": "10", "requests.cpu": "1500m"}
    limits = store.create(
        LIMITS,
        {
            "metadata": {"name": "l"},
            "spec": {
                "limits": [{"type": "Container", "default": {"cpu": 0.1}, "max": {"memory": 2048}}]
            },
        },
        namespace="q",
    ).obj
    item = limits["spec"]["limits"][0]
    assert item["default"] == {"cpu": "100m"}
    assert item["max"] == {"memory": "2048"}
