"""PATCH bodies applied as the Kubernetes API server applies them.

Cases come from RFC 6902/7386, the community "Strategic Merge Patch" document, the
"Update API Objects in Place Using kubectl patch" task page and the patches kubectl itself
sends (client-side apply, ``rollout restart``, ``cordon``). No database is needed.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterapi.store.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
SERVICE = "io.k8s.api.core.v1.Service"
POD = "io.k8s.api.core.v1.Pod"
NODE = "io.k8s.api.core.v1.Node"
PDB = "io.k8s.api.policy.v1.PodDisruptionBudget"


def deployment(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": list(containers)},
            },
            **spec,
        },
    }


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [item[key] for item in items]


# --------------------------------------------------------------------------------------------
# JSON patch
# --------------------------------------------------------------------------------------------


def test_json_patch_applies_operations_in_order() -> None:
    obj = deployment({"name": "a", "image": "nginx"})
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
        {"op": "remove", "path": "/metadata/labels/app"},
        {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
        {"op": "move", "from": "/metadata/annotations/tier", "path": "/metadata/annotations/t"},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "b"}},
    ]
    out = json_patch(obj, ops)
    assert out["spec"]["replicas"] == 3
    assert out["metadata"]["labels"] == {"tier": "front"}
    assert out["metadata"]["annotations"] == {"t": "front"}
    assert names(containers_of(out)) == ["a", "b"]


def test_json_patch_does_not_mutate_its_input() -> None:
    obj = deployment({"name": "a", "image": "nginx"})
    before = copy.deepcopy(obj)
    ops = [{"op": "add", "path": "/metadata/labels/x", "value": {"deep": [1]}}]
    out = json_patch(obj, ops)
    out["metadata"]["labels"]["x"]["deep"].append(2)
    assert obj == before
    assert ops[0]["value"] == {"deep": [1]}


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (
            {"op": "test", "path": "/spec/replicas", "value": 2},
            "testing value /spec/replicas failed: test failed",
        ),
        (
            {"op": "remove", "path": "/metadata/labels/missing"},
            'remove operation does not apply: doc is missing path: "/metadata/labels/missing": '
            "missing value",
        ),
        (
            {"op": "replace", "path": "/spec/paused", "value": True},
            "replace operation does not apply: doc is missing key: /spec/paused: missing value",
        ),
        (
            {"op": "add", "path": "/spec/nothing/here", "value": 1},
            'add operation does not apply: doc is missing path: "/spec/nothing/here": '
            "missing value",
        ),
        (
            {"op": "move", "from": "/nope", "path": "/spec/x"},
            "move operation does not apply: doc is missing from path: /nope: missing value",
        ),
        ({"op": "frobnicate", "path": "/spec"}, "Unexpected kind: frobnicate"),
    ],
)
def test_json_patch_failures_are_422_with_upstream_wording(
    op: dict[str, Any], message: str
) -> None:
    with pytest.raises(PatchError) as info:
        json_patch(deployment(), [op])
    assert info.value.code == 422
    assert info.value.reason == "Invalid"
    assert info.value.message == message


def test_json_patch_operation_that_is_not_an_object_is_400() -> None:
    with pytest.raises(PatchError) as info:
        json_patch(deployment(), ["add"])
    assert info.value.code == 400


def test_json_patch_whose_result_is_not_an_object_is_rejected() -> None:
    with pytest.raises(PatchError) as info:
        json_patch(deployment(), [{"op": "replace", "path": "", "value": [1]}])
    assert info.value.code == 422


# --------------------------------------------------------------------------------------------
# Merge patch (RFC 7386, appendix A)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": {"b": 1}}, {"a": "x"}, {"a": "x"}),
    ],
)
def test_merge_patch_follows_rfc7386(
    target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]
) -> None:
    assert merge_patch(target, patch) == result


json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@given(json_objects)
def test_merge_patch_with_empty_patch_is_identity(obj: dict[str, Any]) -> None:
    assert merge_patch(obj, {}) == obj


@given(json_objects, json_objects)
def test_merge_patch_is_idempotent(obj: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(obj, patch)
    assert merge_patch(once, patch) == once


# --------------------------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------------------------


def test_service_port_patch_merges_by_port() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]},
    }
    out = strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080}]}}, SERVICE
    )
    assert sorted(names(out["spec"]["ports"], "port")) == [80, 8080]
    changed = strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 80, "targetPort": 81}]}}, SERVICE
    )
    assert changed["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 81}]


def test_deployment_env_patch_merges_into_the_named_container() -> None:
    obj = deployment(
        {"name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "envoy"},
    )
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}
            }
        }
    }
    out = strategic_merge_patch(obj, patch, DEPLOYMENT)
    app, sidecar = containers_of(out)
    assert app["image"] == "nginx"
    assert sorted(names(app["env"])) == ["A", "B"]
    assert sidecar == {"name": "sidecar", "image": "envoy"}


def test_added_container_goes_before_server_only_containers_as_upstream() -> None:
    # kubectl patch docs: patching in "patch-demo-ctr-2" lists it first.
    obj = deployment({"name": "patch-demo-ctr", "image": "nginx"})
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}
        }
    }
    out = strategic_merge_patch(obj, patch, DEPLOYMENT)
    assert names(containers_of(out)) == ["patch-demo-ctr-2", "patch-demo-ctr"]


def test_client_side_apply_set_element_order_reorders_containers() -> None:
    # Live has a container injected by someone else ("mesh"); the user's manifest now lists
    # "init" before "app", and kubectl's three-way patch carries $setElementOrder.
    obj = deployment(
        {"name": "app", "image": "app:1"},
        {"name": "mesh", "image": "envoy"},
    )
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "init"}, {"name": "app"}],
                    "containers": [
                        {"name": "init", "image": "busybox"},
                        {"name": "app", "image": "app:2"},
                    ],
                }
            }
        },
    }
    out = strategic_merge_patch(obj, patch, DEPLOYMENT)
    assert names(containers_of(out)) == ["init", "app", "mesh"]
    assert containers_of(out)[1]["image"] == "app:2"
    assert "$setElementOrder/containers" not in out["spec"]["template"]["spec"]


def test_set_element_order_alone_reorders_a_list_of_maps() -> None:
    obj = deployment({"name": "a"}, {"name": "b"}, {"name": "c"})
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]
                }
            }
        }
    }
    assert names(containers_of(strategic_merge_patch(obj, patch, DEPLOYMENT))) == ["b", "c", "a"]


def test_set_element_order_reorders_a_primitive_list() -> None:
    obj = {"metadata": {"name": "x", "finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}}
    assert strategic_merge_patch(obj, patch, DEPLOYMENT)["metadata"]["finalizers"] == [
        "b",
        "c",
        "a",
    ]


def test_set_element_order_inconsistent_with_the_patch_list_is_400() -> None:
    obj = deployment({"name": "a"}, {"name": "b"})
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                    "containers": [{"name": "b"}, {"name": "a"}],
                }
            }
        }
    }
    with pytest.raises(PatchError) as info:
        strategic_merge_patch(obj, patch, DEPLOYMENT)
    assert info.value.code == 400
    assert "doesn't match $setElementOrder list" in info.value.message


def test_kubectl_client_side_apply_three_way_patch_removes_and_adds() -> None:
    # What kubectl apply sends when the manifest drops container "old", adds "new" and
    # removes a label it had applied before.
    obj = deployment({"name": "old", "image": "x"}, {"name": "web", "image": "nginx:1"})
    obj["metadata"]["labels"]["stale"] = "yes"
    patch = {
        "metadata": {"labels": {"stale": None}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "new"}],
                    "containers": [
                        {"name": "web", "image": "nginx:2"},
                        {"name": "new", "image": "redis"},
                        {"$patch": "delete", "name": "old"},
                    ],
                }
            }
        },
    }
    out = strategic_merge_patch(obj, patch, DEPLOYMENT)
    assert out["metadata"]["labels"] == {"app": "web"}
    assert containers_of(out) == [
        {"name": "web", "image": "nginx:2"},
        {"name": "new", "image": "redis"},
    ]


def test_rollout_restart_patch_sets_the_template_annotation() -> None:
    obj = deployment({"name": "a", "image": "nginx"})
    stamp = "2025-06-01T12:00:00Z"
    patch = {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}
        }
    }
    out = strategic_merge_patch(obj, patch, DEPLOYMENT)
    template_meta = out["spec"]["template"]["metadata"]
    assert template_meta == {
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": stamp},
    }
    assert containers_of(out) == containers_of(obj)


def test_cordon_and_uncordon_patches() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {}}
    cordoned = strategic_merge_patch(node, {"spec": {"unschedulable": True}}, NODE)
    assert cordoned["spec"] == {"unschedulable": True}
    uncordoned = strategic_merge_patch(cordoned, {"spec": {"unschedulable": None}}, NODE)
    assert uncordoned["spec"] == {}


def test_finalizers_merge_as_an_ordered_set() -> None:
    obj = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
    out = strategic_merge_patch(obj, {"metadata": {"finalizers": ["b", "c"]}}, DEPLOYMENT)
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]


def test_delete_from_primitive_list_removes_values() -> None:
    obj = {"metadata": {"name": "x", "finalizers": ["a", "b", "c", "b"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}
    assert strategic_merge_patch(obj, patch, DEPLOYMENT)["metadata"] == {
        "name": "x",
        "finalizers": ["a", "c"],
    }


def test_list_without_patch_strategy_is_replaced() -> None:
    obj = deployment({"name": "a", "args": ["--one", "--two"]})
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["--three"]}]}}}}
    assert containers_of(strategic_merge_patch(obj, patch, DEPLOYMENT))[0]["args"] == ["--three"]


def test_patch_replace_directive_in_a_list_replaces_it() -> None:
    obj = deployment({"name": "a", "image": "x"}, {"name": "b", "image": "y"})
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}]}
            }
        }
    }
    assert containers_of(strategic_merge_patch(obj, patch, DEPLOYMENT)) == [
        {"name": "c", "image": "z"}
    ]


def test_patch_replace_directive_on_a_map_replaces_it() -> None:
    obj = deployment({"name": "a"})
    patch = {"metadata": {"labels": {"$patch": "replace", "tier": "db"}}}
    assert strategic_merge_patch(obj, patch, DEPLOYMENT)["metadata"]["labels"] == {"tier": "db"}


def test_patch_delete_directive_on_a_map_empties_it() -> None:
    obj = deployment({"name": "a"})
    patch = {"metadata": {"labels": {"$patch": "delete"}}}
    assert strategic_merge_patch(obj, patch, DEPLOYMENT)["metadata"]["labels"] == {}


def test_patch_merge_directive_is_the_default_merge() -> None:
    obj = deployment({"name": "a"})
    patch = {"metadata": {"labels": {"$patch": "merge", "tier": "db"}}}
    labels = strategic_merge_patch(obj, patch, DEPLOYMENT)["metadata"]["labels"]
    assert labels == {"app": "web", "tier": "db"}


def test_unknown_patch_directive_is_400() -> None:
    with pytest.raises(PatchError) as info:
        strategic_merge_patch(deployment(), {"metadata": {"$patch": "explode"}}, DEPLOYMENT)
    assert info.value.code == 400
    assert info.value.message.startswith("unknown patch type: explode in map: map[")


def test_retain_keys_clears_the_other_members_of_a_union() -> None:
    obj = deployment(
        {"name": "a"},
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
    )
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge_patch(obj, patch, DEPLOYMENT)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_on_volume_elements_switches_the_source() -> None:
    obj = deployment({"name": "a"})
    obj["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {
                            "$retainKeys": ["configMap", "name"],
                            "name": "data",
                            "configMap": {"name": "cfg"},
                        }
                    ]
                }
            }
        }
    }
    volumes = strategic_merge_patch(obj, patch, DEPLOYMENT)["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "data", "configMap": {"name": "cfg"}}]


def test_patch_content_outside_retain_keys_is_422() -> None:
    obj = deployment({"name": "a"})
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}
    with pytest.raises(PatchError) as info:
        strategic_merge_patch(obj, patch, DEPLOYMENT)
    assert (info.value.code, info.value.message) == (
        422,
        "patch content doesn't match retainKeys list",
    )


def test_replace_patch_strategy_replaces_a_struct() -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "p"},
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "minAvailable": 1},
    }
    patch = {"spec": {"selector": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}}}
    assert strategic_merge_patch(pdb, patch, PDB)["spec"]["selector"] == {
        "matchExpressions": [{"key": "k", "operator": "Exists"}]
    }


def test_pod_conditions_merge_by_type() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False"},
            ]
        },
    }
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    out = strategic_merge_patch(pod, patch, POD)
    assert out["status"]["conditions"] == [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "True"},
    ]


def test_container_ports_merge_by_container_port() -> None:
    obj = deployment({"name": "a", "ports": [{"containerPort": 80, "name": "http"}]})
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
                    ]
                }
            }
        }
    }
    ports = containers_of(strategic_merge_patch(obj, patch, DEPLOYMENT))[0]["ports"]
    assert ports == [{"containerPort": 80, "name": "http", "protocol": "TCP"}]


def test_element_without_its_merge_key_is_400() -> None:
    obj = deployment({"name": "a"})
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}}
    with pytest.raises(PatchError) as info:
        strategic_merge_patch(obj, patch, DEPLOYMENT)
    assert info.value.code == 400
    assert info.value.message == "map: map[image:nginx] does not contain declared merge key: name"


def test_unknown_fields_fall_back_to_merge_patch_semantics() -> None:
    obj = deployment({"name": "a"})
    obj["spec"]["extra"] = {"list": [1, 2], "map": {"a": 1}}
    patch = {"spec": {"extra": {"list": [3], "map": {"b": 2, "a": None}}}}
    out = strategic_merge_patch(obj, patch, DEPLOYMENT)
    assert out["spec"]["extra"] == {"list": [3], "map": {"b": 2}}


def test_unknown_definition_merges_like_a_merge_patch() -> None:
    obj = {"spec": {"items": [{"name": "a"}], "keep": 1}}
    patch = {"spec": {"items": [{"name": "b", "$patch": "merge"}]}}
    assert strategic_merge_patch(obj, patch, None) == {
        "spec": {"items": [{"name": "b"}], "keep": 1}
    }


def test_null_in_a_patch_deletes_the_key() -> None:
    out = strategic_merge_patch(deployment({"name": "a"}), {"spec": {"replicas": None}}, DEPLOYMENT)
    assert "replicas" not in out["spec"]


def test_strategic_merge_patch_does_not_mutate_its_inputs() -> None:
    obj = deployment({"name": "a", "env": [{"name": "A", "value": "1"}]})
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "a", "env": [{"name": "B", "value": "2"}]}]}
            }
        }
    }
    obj_before, patch_before = copy.deepcopy(obj), copy.deepcopy(patch)
    out = strategic_merge_patch(obj, patch, DEPLOYMENT)
    containers_of(out)[0]["env"].append({"name": "C"})
    assert obj == obj_before
    assert patch == patch_before


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def test_apply_patch_dispatches_on_content_type() -> None:
    obj = deployment({"name": "a"})
    body = json.dumps({"spec": {"replicas": 5}}).encode()
    assert apply_patch(obj, body, MERGE_PATCH, DEPLOYMENT)["spec"]["replicas"] == 5
    assert (
        apply_patch(obj, body, STRATEGIC_MERGE_PATCH + "; charset=utf-8", DEPLOYMENT)["spec"][
            "replicas"
        ]
        == 5
    )
    ops = json.dumps([{"op": "replace", "path": "/spec/replicas", "value": 2}]).encode()
    assert apply_patch(obj, ops, JSON_PATCH, DEPLOYMENT)["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", MERGE_PATCH),
        (b"", STRATEGIC_MERGE_PATCH),
        (b'{"op": "add"}', JSON_PATCH),
        (b"[1, 2]", MERGE_PATCH),
        (b'"text"', STRATEGIC_MERGE_PATCH),
        (b'{"a": NaN}', MERGE_PATCH),
        (b"\xff\xfe", JSON_PATCH),
    ],
)
def test_ill_formed_patch_bodies_are_400(body: bytes, content_type: str) -> None:
    with pytest.raises(PatchError) as info:
        apply_patch(deployment(), body, content_type, DEPLOYMENT)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"


def test_strategic_merge_patch_of_a_custom_resource_is_415() -> None:
    with pytest.raises(PatchError) as info:
        apply_patch({"spec": {}}, b"{}", STRATEGIC_MERGE_PATCH, None)
    assert info.value.code == 415
    assert STRATEGIC_MERGE_PATCH not in info.value.message
    assert MERGE_PATCH in info.value.message


def test_unknown_patch_content_type_is_415() -> None:
    with pytest.raises(PatchError) as info:
        apply_patch(deployment(), b"{}", "application/xml", DEPLOYMENT)
    assert info.value.code == 415
    assert info.value.message.startswith("the body of the request was in an unknown format")


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

DIRECTIVE_KEYS = ["$patch", "$retainKeys", "$setElementOrder/containers"]
DIRECTIVE_KEYS += ["$deleteFromPrimitiveList/finalizers", "$setElementOrder/finalizers"]

directive_values = st.sampled_from(["replace", "delete", "merge"]) | st.lists(
    st.sampled_from(["a", "b", "name", "image"])
    | st.fixed_dictionaries({"name": st.sampled_from(["a", "b"])}),
    max_size=3,
)
patch_keys = st.sampled_from(
    ["name", "image", "a", "b", "containers", "finalizers", *DIRECTIVE_KEYS]
)
patch_values = st.recursive(
    json_scalars | directive_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(patch_keys, inner, max_size=4),
    max_leaves=15,
)


def directive_keys_in(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key.startswith(
                ("$patch", "$retainKeys", "$setElementOrder/", "$deleteFromPrimitiveList/")
            ):
                found.append(key)
            found.extend(directive_keys_in(child))
    elif isinstance(value, list):
        for child in value:
            found.extend(directive_keys_in(child))
    return found


@settings(max_examples=300)
@given(
    st.dictionaries(patch_keys, patch_values, max_size=4),
    st.sampled_from([None, DEPLOYMENT]),
)
def test_strategic_merge_patch_never_leaves_directive_keys(
    patch: dict[str, Any], definition: str | None
) -> None:
    obj = deployment({"name": "a", "image": "x"}, {"name": "b"})
    obj["metadata"]["finalizers"] = ["a"]
    wrapped = {"spec": {"template": {"spec": patch}}, "metadata": patch}
    try:
        out = strategic_merge_patch(obj, wrapped, definition)
    except PatchError as exc:
        assert exc.code in (400, 422)
        return
    assert directive_keys_in(out) == []


list_free_values = st.recursive(
    json_scalars,
    lambda inner: st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    max_leaves=10,
)
list_free_objects = st.dictionaries(st.sampled_from(["a", "b", "c"]), list_free_values, max_size=3)


@given(list_free_objects, list_free_objects)
def test_strategic_merge_patch_without_schema_or_lists_equals_merge_patch(
    obj: dict[str, Any], patch: dict[str, Any]
) -> None:
    assert strategic_merge_patch(obj, patch, None) == merge_patch(obj, patch)


@given(json_objects)
def test_strategic_merge_patch_with_empty_patch_is_identity(obj: dict[str, Any]) -> None:
    assert strategic_merge_patch(obj, {}, DEPLOYMENT) == obj
