"""The audit log's diff: a JSON patch from the old object to the new, bookkeeping left out."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from clusterapi.audit.log import diff

Obj = dict[str, Any]

POD: Obj = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web",
        "resourceVersion": "7",
        "labels": {"app": "web", "a/b~c": "x"},
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}], "nodeName": "n1"},
    "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
}


def changed(change: Any) -> Obj:
    new = copy.deepcopy(POD)
    change(new)
    return new


def running(pod: Obj) -> None:
    pod["status"]["phase"] = "Running"
    pod["status"]["conditions"].append({"type": "Ready", "status": "True"})
    pod["status"]["podIP"] = "10.1.0.5"


def relabel(pod: Obj) -> None:
    del pod["metadata"]["labels"]["a/b~c"]
    pod["metadata"]["labels"]["tier"] = "front"


def swap_containers(pod: Obj) -> None:
    pod["spec"]["containers"] = [{"name": "d", "image": "busybox"}, *pod["spec"]["containers"]]


def drop_condition(pod: Obj) -> None:
    pod["status"]["conditions"] = []


def reorder_conditions(pod: Obj) -> None:
    pod["status"]["conditions"] = [
        {"type": "Ready", "status": "False"},
        *pod["status"]["conditions"],
    ]


def retype(pod: Obj) -> None:
    pod["spec"]["nodeName"] = {"not": "a string"}
    pod["status"] = "gone"


@pytest.mark.parametrize(
    "change", [running, relabel, swap_containers, drop_condition, reorder_conditions, retype]
)
def test_the_diff_turns_the_old_object_into_the_new(change: Any) -> None:
    new = changed(change)
    patch = diff(POD, new)
    assert patch
    bookkeeping = ("resourceVersion", "managedFields")
    expected = copy.deepcopy(new)
    for key in bookkeeping:
        expected["metadata"].pop(key, None)
    start = copy.deepcopy(POD)
    for key in bookkeeping:
        start["metadata"].pop(key, None)
    assert jsonpatch.apply_patch(start, patch) == expected


def test_only_what_changed_is_in_the_diff() -> None:
    assert diff(POD, changed(running)) == [
        {"op": "replace", "path": "/status/phase", "value": "Running"},
        {"op": "add", "path": "/status/conditions/1", "value": {"type": "Ready", "status": "True"}},
        {"op": "add", "path": "/status/podIP", "value": "10.1.0.5"},
    ]
    assert diff(POD, changed(swap_containers)) == [
        {
            "op": "replace",
            "path": "/spec/containers",
            "value": [{"name": "d", "image": "busybox"}, {"name": "c", "image": "nginx:1.25"}],
        },
    ]
    assert diff(POD, changed(drop_condition)) == [{"op": "remove", "path": "/status/conditions/0"}]

    def new_image(pod: Obj) -> None:
        pod["spec"]["containers"][0]["image"] = "nginx:1.26"

    assert diff(POD, changed(new_image)) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.26"}
    ]
    assert diff(POD, changed(relabel)) == [
        {"op": "remove", "path": "/metadata/labels/a~1b~0c"},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
    ]


def test_bookkeeping_alone_is_no_change_and_a_create_has_no_diff() -> None:
    def bump(pod: Obj) -> None:
        pod["metadata"]["resourceVersion"] = "8"
        pod["metadata"]["managedFields"] = []

    assert diff(POD, changed(bump)) == []
    assert diff(None, POD) is None
