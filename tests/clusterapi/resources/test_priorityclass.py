"""PriorityClass and the Priority admission rule for pods, as upstream."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.resources import registered as kind
from clusterapi.resources.kinds import priorityclass
from clusterapi.store.errors import ApiError

pytestmark = pytest.mark.django_db

Obj = dict[str, Any]
NS = "prio"


PC = kind("scheduling.k8s.io/v1", "PriorityClass")
POD = kind("v1", "Pod")


@pytest.fixture(autouse=True)
def namespace(db: None) -> None:
    store.create(kind("v1", "Namespace"), {"metadata": {"name": NS}})


def create_class(name: str, value: int, **more: Any) -> Obj:
    return store.create(PC, {"metadata": {"name": name}, "value": value, **more}).obj


def create_pod(name: str, **spec: Any) -> Obj:
    body = {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x"}], **spec},
    }
    return store.create(POD, body, namespace=NS).obj


def test_the_kind_is_declared_like_upstream() -> None:
    assert (PC.namespaced, tuple(PC.short_names), PC.has_status) == (False, ("pc",), False)
    assert create_class("batch", 100)["preemptionPolicy"] == "PreemptLowerPriority"


def test_a_pod_naming_a_class_gets_its_priority_and_preemption_policy() -> None:
    create_class("polite", 500, preemptionPolicy="Never")
    pod = create_pod("p", priorityClassName="polite")
    assert (pod["spec"]["priority"], pod["spec"]["preemptionPolicy"]) == (500, "Never")


def test_without_a_class_a_pod_gets_the_global_default_or_zero() -> None:
    pod = create_pod("plain")
    assert pod["spec"]["priority"] == 0
    assert pod["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    assert "priorityClassName" not in pod["spec"]
    create_class("standard", 42, globalDefault=True)
    pod = create_pod("defaulted")
    assert (pod["spec"]["priority"], pod["spec"]["priorityClassName"]) == (42, "standard")


def test_an_unknown_class_is_forbidden() -> None:
    with pytest.raises(ApiError) as caught:
        create_pod("p", priorityClassName="nope")
    assert caught.value.code == 403
    assert (
        caught.value.message == 'pods "p" is forbidden: no PriorityClass with name nope was found'
    )


def test_a_priority_disagreeing_with_the_class_is_forbidden() -> None:
    create_class("batch", 100)
    with pytest.raises(ApiError) as caught:
        create_pod("p", priorityClassName="batch", priority=7)
    assert caught.value.code == 403
    assert caught.value.message == (
        'pods "p" is forbidden: the integer value of priority (7) must not be provided in pod '
        "spec; priority admission controller computed 100 from the given PriorityClass name"
    )
    assert create_pod("same", priorityClassName="batch", priority=100)["spec"]["priority"] == 100


def test_system_classes_are_built_in() -> None:
    pod = create_pod("critical", priorityClassName="system-node-critical")
    assert pod["spec"]["priority"] == 2_000_001_000
    priorityclass.ensure_system_classes()
    priorityclass.ensure_system_classes()  # idempotent
    names = {pc["metadata"]["name"] for pc in store.list_objects(PC).objects()}
    assert names == {"system-node-critical", "system-cluster-critical"}


def test_priority_is_resolved_at_creation_only() -> None:
    create_class("batch", 100)
    pod = create_pod("p", priorityClassName="batch")

    def relabel(obj: Obj) -> Obj:
        obj["metadata"]["labels"] = {"x": "y"}
        return obj

    updated = store.guaranteed_update(POD, NS, "p", relabel).obj
    assert updated["spec"]["priority"] == pod["spec"]["priority"] == 100


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        (
            "too-high",
            1_000_000_001,
            "maximum allowed value of a user defined priority is 1000000000",
        ),
        ("system-mine", 5, "priority class names with 'system-' prefix are reserved"),
    ],
)
def test_class_values_and_names_are_limited(name: str, value: int, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        create_class(name, value)
    assert caught.value.code == 422
    assert fragment in caught.value.message


def test_value_is_immutable_and_only_one_default_may_exist() -> None:
    create_class("a", 1, globalDefault=True)
    with pytest.raises(ApiError) as caught:
        create_class("b", 2, globalDefault=True)
    assert caught.value.code == 403
    assert "PriorityClass a is already marked as default. Only one default can exist" in (
        caught.value.message
    )
    with pytest.raises(ApiError) as changed:
        store.guaranteed_update(PC, "", "a", lambda o: {**o, "value": 5})
    assert changed.value.code == 422
    assert "value: Forbidden: may not be changed in an update." in changed.value.message
