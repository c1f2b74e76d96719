"""The fast schema check agrees with the full validator it short-cuts.

``validate_object`` asks a generated-code validator (fastjsonschema) first and runs the full
jsonschema validator only for objects it rejects. That is only sound if the fast one never
accepts what the full one rejects; these tests compare the two on realistic objects of every
stored kind and on thousands of mutations of them (unknown fields, wrong types, values that
sit on the draft-07/2020-12 boundary such as ``1.0`` for an integer).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterapi.admission import validation
from clusterapi.resources import KINDS

Obj = dict[str, Any]

POD: Obj = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web",
        "namespace": "team",
        "labels": {"app": "web"},
        "annotations": {"note": "x"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "rs",
                "uid": "u",
                "controller": True,
            }
        ],
    },
    "spec": {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "command": ["nginx"],
                "args": ["-g", "daemon off;"],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": 1}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
        "containerStatuses": [
            {
                "name": "web",
                "ready": True,
                "restartCount": 0,
                "image": "nginx:1.27",
                "imageID": "",
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }
        ],
    },
}

DEPLOYMENT: Obj = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "team"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1},
        },
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": POD["spec"]},
    },
}

SERVICE: Obj = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "team"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
}

SAMPLES: list[tuple[str, Obj]] = [
    ("io.k8s.api.core.v1.Pod", POD),
    ("io.k8s.api.apps.v1.Deployment", DEPLOYMENT),
    ("io.k8s.api.core.v1.Service", SERVICE),
]

ODD_VALUES: list[Any] = [None, True, 0, 1.0, 1.5, -1, "", "x", "1", [], [1], {}, {"x": 1}]


def full_valid(definition: str, obj: Obj) -> bool:
    return not any(True for _ in validation._validator(definition).iter_errors(obj))


def fast_valid(definition: str, obj: Obj) -> bool:
    return validation._schema_valid(definition, obj)


def nodes(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) inside an object, depth first."""
    found = [(path, obj)]
    if isinstance(obj, dict):
        for key, value in obj.items():
            found.extend(nodes(value, (*path, key)))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found.extend(nodes(value, (*path, index)))
    return found


def replaced(obj: Obj, path: tuple[Any, ...], value: Any) -> Obj:
    out = copy.deepcopy(obj)
    node: Any = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(("definition", "obj"), SAMPLES, ids=[d for d, _ in SAMPLES])
def test_realistic_objects_pass_both(definition: str, obj: Obj) -> None:
    assert full_valid(definition, obj)
    assert fast_valid(definition, obj)


@pytest.mark.parametrize(("definition", "obj"), SAMPLES, ids=[d for d, _ in SAMPLES])
def test_every_single_value_swap_gets_the_same_verdict(definition: str, obj: Obj) -> None:
    compared = disagreements = 0
    for path, _ in nodes(obj):
        if not path:
            continue
        for odd in ODD_VALUES:
            mutated = replaced(obj, path, odd)
            compared += 1
            if fast_valid(definition, mutated) != full_valid(definition, mutated):
                disagreements += 1
    assert compared > 100
    assert disagreements == 0


@pytest.mark.parametrize(("definition", "obj"), SAMPLES, ids=[d for d, _ in SAMPLES])
def test_an_unknown_field_anywhere_is_rejected_by_both(definition: str, obj: Obj) -> None:
    for path, node in nodes(obj):
        if not isinstance(node, dict) or (
            path
            and path[-1]
            in (
                "labels",
                "annotations",
                "nodeSelector",
                "requests",
                "limits",
                "matchLabels",
                "selector",
            )
        ):
            continue
        mutated = copy.deepcopy(obj)
        target: Any = mutated
        for step in path:
            target = target[step]
        target["surelyUnknownField"] = 1
        assert not fast_valid(definition, mutated), path
        assert not full_valid(definition, mutated), path


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(SAMPLES),
    choice=st.integers(min_value=0),
    value=json_values,
)
def test_fast_check_never_accepts_what_the_full_validator_rejects(
    sample: tuple[str, Obj], choice: int, value: Any
) -> None:
    definition, obj = sample
    paths = [p for p, _ in nodes(obj) if p]
    mutated = replaced(obj, paths[choice % len(paths)], value)
    assert fast_valid(definition, mutated) == full_valid(definition, mutated)


def test_every_stored_kind_compiles_a_fast_validator() -> None:
    for kind in KINDS:
        if kind.review or kind.reader:
            continue  # answered on the spot or computed: never validated
        assert callable(validation._fast_validator(kind.definition)), kind.kind
