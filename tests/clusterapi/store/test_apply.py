"""Server-side apply and managedFields, checked against the Server-Side Apply documentation.

Conflict messages are the API server's (``getConflictMessage`` in apimachinery's
``managedfields/internal/conflict.go``); FieldsV1 trees are shaped as ``kubectl get
--show-managed-fields`` shows them. No database is needed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterapi.store import apply as apply_module
from clusterapi.store.apply import (
    ApplyConflict,
    created_fields,
    fields_to_paths,
    path_string,
    paths_to_fields,
    record_update,
    server_side_apply,
)
from clusterapi.store.patch import root_node

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
CONFIGMAP = "io.k8s.api.core.v1.ConfigMap"
SERVICE = "io.k8s.api.core.v1.Service"
POD = "io.k8s.api.core.v1.Pod"
T0, T1, T2, T3 = (f"2025-06-01T12:00:0{i}Z" for i in range(4))


def deployment(replicas: int | None = 1, *containers: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": list(containers) or [{"name": "web", "image": "nginx:1"}]},
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }


def apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str = "kubectl",
    *,
    force: bool = False,
    now: str = T1,
    definition: str = DEPLOYMENT,
) -> dict[str, Any]:
    return server_side_apply(
        live,
        applied,
        manager,
        force=force,
        definition=definition,
        api_version="apps/v1" if definition == DEPLOYMENT else "v1",
        now=now,
    )


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> set[str]:
    entry = entries(obj).get((manager, operation))
    return {path_string(p) for p in fields_to_paths(entry["fieldsV1"])} if entry else set()


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


# --------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------


def test_apply_creates_the_object_with_an_apply_entry() -> None:
    out = apply(None, deployment(2))
    assert out["spec"] == deployment(2)["spec"]
    assert out["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}
                            }
                        },
                    },
                }
            },
        }
    ]


def test_applying_the_same_manifest_twice_is_a_no_op() -> None:
    first = apply(None, deployment(2), now=T1)
    second = apply(first, deployment(2), now=T2)
    assert second == first
    assert second["metadata"]["managedFields"][0]["time"] == T1


def test_apply_after_kubectl_create_conflicts_on_a_changed_field() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    with pytest.raises(ApplyConflict) as info:
        apply(created, deployment(3))
    assert info.value.conflicts == [("kubectl-create", ".spec.replicas")]
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: .spec.replicas'
    )
    assert info.value.code == 409
    assert info.value.causes == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-create" using apps/v1',
            "field": ".spec.replicas",
        }
    ]


def test_applying_values_another_manager_set_shares_ownership() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    out = apply(created, deployment(1))
    assert ".spec.replicas" in owned(out, "kubectl")
    assert ".spec.replicas" in owned(out, "kubectl-create", "Update")


def test_forced_apply_takes_ownership_of_conflicting_fields() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    out = apply(created, deployment(3), force=True)
    assert out["spec"]["replicas"] == 3
    assert ".spec.replicas" in owned(out, "kubectl")
    assert ".spec.replicas" not in owned(out, "kubectl-create", "Update")
    assert '.spec.template.spec.containers[name="web"].image' in owned(
        out, "kubectl-create", "Update"
    )


def test_conflict_message_lists_several_conflicts_per_manager() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    changed = deployment(3, {"name": "web", "image": "nginx:2"})
    with pytest.raises(ApplyConflict) as info:
        apply(created, changed)
    assert info.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-create" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="web"].image'
    )


def test_conflict_with_another_applier_names_it_without_version() -> None:
    first = apply(None, deployment(2), "team-a")
    with pytest.raises(ApplyConflict) as info:
        apply(first, deployment(5), "team-b")
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "team-a": .spec.replicas'
    )


def test_conflicts_are_grouped_by_sorted_manager() -> None:
    live = apply(None, deployment(2), "zeta")
    live = apply(
        live, {**deployment(None), "metadata": {"name": "web", "labels": {"a": "1"}}}, "alpha"
    )
    applied = deployment(3)
    applied["metadata"]["labels"] = {"a": "2"}
    with pytest.raises(ApplyConflict) as info:
        apply(live, applied, "omega")
    assert info.value.message == (
        'Apply failed with 2 conflicts: conflicts with "alpha":\n'
        "- .metadata.labels.a\n"
        'conflicts with "zeta":\n'
        "- .spec.replicas"
    )


def test_field_dropped_from_the_manifest_is_removed() -> None:
    first = apply(None, deployment(2))
    out = apply(first, deployment(None))
    assert "replicas" not in out["spec"]
    assert ".spec.replicas" not in owned(out, "kubectl")


def test_field_dropped_from_the_manifest_stays_when_another_manager_owns_it() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    shared = apply(created, deployment(1))
    out = apply(shared, deployment(None))
    assert out["spec"]["replicas"] == 1
    assert ".spec.replicas" not in owned(out, "kubectl")


def test_container_dropped_from_the_manifest_is_removed() -> None:
    two = deployment(1, {"name": "web", "image": "nginx"}, {"name": "log", "image": "fluent"})
    first = apply(None, two)
    out = apply(first, deployment(1, {"name": "web", "image": "nginx"}))
    assert containers_of(out) == [{"name": "web", "image": "nginx"}]
    assert not any("log" in p for p in owned(out, "kubectl"))


def test_struct_emptied_by_removal_is_removed() -> None:
    applied = deployment(1)
    applied["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 1}}
    first = apply(None, applied)
    out = apply(first, deployment(1))
    assert "strategy" not in out["spec"]


def test_list_map_items_merge_by_key_and_keep_live_only_items() -> None:
    live = deployment(1, {"name": "web", "image": "nginx", "imagePullPolicy": "Always"})
    live = record_update(None, live, "kubectl-create", api_version="apps/v1", now=T0)
    # A controller injected a sidecar; the applier only knows "web".
    live["spec"]["template"]["spec"]["containers"].append({"name": "mesh", "image": "envoy"})
    out = apply(live, deployment(1, {"name": "web", "image": "nginx", "env": [{"name": "A"}]}))
    assert containers_of(out) == [
        {"name": "web", "image": "nginx", "imagePullPolicy": "Always", "env": [{"name": "A"}]},
        {"name": "mesh", "image": "envoy"},
    ]


def test_applied_order_wins_for_shared_items() -> None:
    a, b = {"name": "a", "image": "x"}, {"name": "b", "image": "y"}
    first = apply(None, deployment(1, a, b))
    out = apply(first, deployment(1, b, a))
    assert [c["name"] for c in containers_of(out)] == ["b", "a"]


def test_port_keys_default_the_protocol() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
    }
    out = apply(None, svc, definition=SERVICE)
    ports = entries(out)[("kubectl", "Apply")]["fieldsV1"]["f:spec"]["f:ports"]
    assert list(ports) == ['k:{"port":80,"protocol":"TCP"}']
    # After defaulting, the live item with protocol TCP is the same item.
    out["spec"]["ports"][0]["protocol"] = "TCP"
    again = apply(out, svc, definition=SERVICE, now=T2)
    assert again["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]


def test_set_lists_merge_by_value() -> None:
    live = apply(
        None,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a"]}},
        "one",
        definition=CONFIGMAP,
    )
    out = apply(
        live,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["b"]}},
        "two",
        definition=CONFIGMAP,
    )
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert owned(out, "two") == {'.metadata.finalizers[="b"]'}


def test_atomic_lists_are_replaced_and_owned_whole() -> None:
    first = apply(None, deployment(1, {"name": "web", "args": ["a", "b"]}))
    assert '.spec.template.spec.containers[name="web"].args' in owned(first, "kubectl")
    out = apply(first, deployment(1, {"name": "web", "args": ["c"]}))
    assert containers_of(out)[0]["args"] == ["c"]


def test_status_is_ignored_by_apply_of_the_main_resource() -> None:
    live = apply(None, deployment(1))
    live["status"] = {"replicas": 1}
    applied = deployment(1)
    applied["status"] = {"replicas": 9}
    out = apply(live, applied, now=T2)
    assert out["status"] == {"replicas": 1}
    assert not any(p.startswith(".status") for p in owned(out, "kubectl"))


def test_server_fields_are_never_owned() -> None:
    applied = deployment(1)
    applied["metadata"].update(uid="u", resourceVersion="7", generation=3)
    out = apply(None, applied)
    assert not any(
        p.startswith((".metadata", ".apiVersion", ".kind")) for p in owned(out, "kubectl")
    )


def test_apply_does_not_mutate_its_inputs() -> None:
    live = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    applied = deployment(3)
    live_before, applied_before = copy.deepcopy(live), copy.deepcopy(applied)
    apply(live, applied, force=True)
    assert live == live_before
    assert applied == applied_before


# --------------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------------


def test_create_owns_every_field_and_free_form_maps() -> None:
    obj = deployment(1)
    obj["metadata"]["labels"] = {"app": "web"}
    obj["metadata"].update(uid="u", resourceVersion="1", creationTimestamp=T0, generation=1)
    obj["status"] = {"replicas": 0}
    out = record_update(None, obj, "kubectl-create", api_version="apps/v1", now=T0)
    [entry] = out["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["time"]) == ("kubectl-create", "Update", T0)
    assert entry["fieldsV1"]["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert "f:status" not in entry["fieldsV1"]
    assert out["spec"] == obj["spec"]


def test_scale_after_apply_takes_replicas_and_a_reapply_conflicts() -> None:
    applied = apply(None, deployment(2))
    scaled = copy.deepcopy(applied)
    scaled["spec"]["replicas"] = 5
    scaled = record_update(applied, scaled, "kubectl", api_version="apps/v1", now=T2)
    assert ".spec.replicas" not in owned(scaled, "kubectl")
    assert owned(scaled, "kubectl", "Update") == {".spec.replicas"}
    with pytest.raises(ApplyConflict) as info:
        apply(scaled, deployment(2), now=T3)
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas'
    )


def test_update_without_changes_records_nothing() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    same = record_update(created, copy.deepcopy(created), "other", api_version="apps/v1", now=T1)
    assert same["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_update_keeps_the_old_managed_fields_when_the_new_object_has_none() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    new = deployment(4)
    out = record_update(created, new, "kubectl-edit", api_version="apps/v1", now=T1)
    assert set(entries(out)) == {("kubectl-create", "Update"), ("kubectl-edit", "Update")}
    assert owned(out, "kubectl-edit", "Update") == {".spec.replicas"}


def test_removed_fields_leave_every_manager() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    out = record_update(created, deployment(None), "kubectl-edit", api_version="apps/v1", now=T1)
    assert ".spec.replicas" not in owned(out, "kubectl-create", "Update")
    assert ("kubectl-edit", "Update") not in entries(out)


def test_managed_fields_are_sorted_apply_first_then_by_time() -> None:
    created = record_update(None, deployment(1), "zz-create", api_version="apps/v1", now=T0)
    out = apply(created, {**deployment(None), "metadata": {"name": "web", "labels": {"a": "b"}}})
    assert [(e["manager"], e["operation"]) for e in out["metadata"]["managedFields"]] == [
        ("kubectl", "Apply"),
        ("zz-create", "Update"),
    ]


# --------------------------------------------------------------------------------------------
# FieldsV1 and paths
# --------------------------------------------------------------------------------------------


def test_path_string_formats_keys_and_values() -> None:
    path = ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:name")
    assert path_string(path) == '.spec.ports[port=80,protocol="TCP"].name'
    assert path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


def test_fields_v1_marks_owned_parents_with_a_dot() -> None:
    paths = {("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:app")}
    assert paths_to_fields(paths) == {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}


def test_fields_v1_key_spelling_is_normalised() -> None:
    fields: dict[str, Any] = {"f:spec": {"f:ports": {'k:{"protocol": "TCP", "port": 80}': {}}}}
    assert fields_to_paths(fields) == {("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}')}


names = st.sampled_from(["web", "log", "mesh"])
container_configs = st.builds(
    lambda name, image, args, env: {
        "name": name,
        "image": image,
        **({"args": args} if args else {}),
        **({"env": [{"name": e, "value": "v"} for e in env]} if env else {}),
    },
    names,
    st.sampled_from(["nginx:1", "nginx:2"]),
    st.lists(st.sampled_from(["-a", "-b"]), max_size=2),
    st.lists(st.sampled_from(["A", "B"]), max_size=2, unique=True),
)
deployment_configs = st.builds(
    lambda replicas, containers, labels: {
        **deployment(replicas, *containers),
        "metadata": {"name": "web", "labels": labels},
    },
    st.none() | st.integers(0, 3),
    st.lists(container_configs, min_size=1, max_size=3, unique_by=lambda c: c["name"]),
    st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["1", "2"]), max_size=2),
)


@given(deployment_configs, deployment_configs)
def test_reapplying_a_manifest_is_a_no_op_whatever_came_before(
    before: dict[str, Any], config: dict[str, Any]
) -> None:
    live = apply(apply(None, before, now=T0), config, force=True, now=T1)
    assert apply(live, config, now=T2) == live


def holds(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` carries every value of ``expected`` (named list items by name)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and holds(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list) and all(isinstance(e, dict) and "name" in e for e in expected):
        by_name = {a.get("name"): a for a in actual if isinstance(a, dict)}
        return all(holds(by_name.get(e["name"]), e) for e in expected)
    return bool(actual == expected)


@given(deployment_configs, deployment_configs)
def test_forced_apply_result_holds_the_applied_values(
    before: dict[str, Any], config: dict[str, Any]
) -> None:
    created = record_update(None, before, "kubectl-create", api_version="apps/v1", now=T0)
    out = apply(created, config, force=True)
    assert holds(out, config)


elements = st.sampled_from(["f:a", "f:b", "f:spec", 'k:{"name":"x"}', 'v:"y"', "i:0"])


@given(st.sets(st.lists(elements, min_size=1, max_size=4).map(tuple), max_size=8))
def test_fields_v1_round_trips(paths: set[tuple[str, ...]]) -> None:
    assert fields_to_paths(paths_to_fields(paths)) == paths


def test_entries_of_other_managers_are_kept_as_stored_and_a_sent_list_is_rewritten() -> None:
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    stored_entry = created["metadata"]["managedFields"][0]
    # A read-modify-write carries the stored list: an entry whose fields did not change is
    # written back as read, the writer's own entry is new.
    changed = copy.deepcopy(created)
    changed["spec"]["replicas"] = 3
    scaled = record_update(created, changed, "scaler", api_version="apps/v1", now=T1)
    create_entry, scaler_entry = scaled["metadata"]["managedFields"]
    assert create_entry["manager"] == "kubectl-create"
    assert ".spec.replicas" not in owned(scaled, "kubectl-create", "Update")
    assert owned(scaled, "scaler", "Update") == {".spec.replicas"}
    assert scaler_entry["time"] == T1
    relabelled = copy.deepcopy(created)
    relabelled["metadata"]["labels"] = {"team": "a"}
    kept = record_update(created, relabelled, "labeller", api_version="apps/v1", now=T1)
    assert kept["metadata"]["managedFields"][0]["fieldsV1"] == stored_entry["fieldsV1"]
    # A client that sends its own entries, spelled out of order, gets them back in canonical
    # form, as the API server re-encodes every set it is given.
    sent = copy.deepcopy(created)
    fields = sent["metadata"]["managedFields"][0]["fieldsV1"]
    sent["metadata"]["managedFields"][0]["fieldsV1"] = dict(reversed(list(fields.items())))
    sent["metadata"]["labels"] = {"team": "b"}
    rewritten = record_update(created, sent, "labeller", api_version="apps/v1", now=T2)
    entry = next(e for e in rewritten["metadata"]["managedFields"] if e["manager"] != "labeller")
    assert list(entry["fieldsV1"]) == sorted(fields)


def test_a_main_resource_update_leaves_the_status_managers_fields() -> None:
    """As upstream: the kubelet keeps owning the status it wrote through the status
    subresource when someone else relabels the object."""
    created = record_update(None, deployment(1), "kubectl-create", api_version="apps/v1", now=T0)
    reported = copy.deepcopy(created)
    reported["status"] = {"replicas": 1, "readyReplicas": 1}
    reported = record_update(
        created, reported, "controller", api_version="apps/v1", now=T1, subresource="status"
    )
    relabelled = copy.deepcopy(reported)
    relabelled["metadata"]["labels"] = {"team": "a"}
    relabelled = record_update(reported, relabelled, "labeller", api_version="apps/v1", now=T2)
    status_entry = next(
        e for e in relabelled["metadata"]["managedFields"] if e.get("subresource") == "status"
    )
    assert status_entry["manager"] == "controller"
    assert {path_string(p) for p in fields_to_paths(status_entry["fieldsV1"])} == {
        ".status.replicas",
        ".status.readyReplicas",
    }
    assert owned(relabelled, "labeller", "Update") == {".metadata.labels", ".metadata.labels.team"}


def fields_from_paths(obj: dict[str, Any], definition: str, *, ignore_status: bool) -> Any:
    """The general route: every owned path of a flattened object, rendered."""
    flat = apply_module._flatten(obj, root_node(definition), ignore_status=ignore_status)
    return paths_to_fields({p for p, e in flat.items() if e.kind != apply_module._STRUCT})


RICH_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "p",
        "namespace": "default",
        "uid": "u",
        "labels": {"app": "web"},
        "annotations": {},
        "finalizers": ["a/b", "c/d"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "1"}],
    },
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "nginx",
                "command": ["sh", "-c"],
                "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                "resources": {"limits": {"cpu": "1"}},
            }
        ],
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "volumes": [{"name": "v", "emptyDir": {}}],
    },
    "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
}


@pytest.mark.parametrize("ignore_status", [True, False])
def test_created_fields_match_the_paths_of_the_flattened_object(ignore_status: bool) -> None:
    expected = fields_from_paths(RICH_POD, POD, ignore_status=ignore_status)
    assert created_fields(RICH_POD, root_node(POD), ignore_status=ignore_status) == expected
    assert ("f:status" in expected) is not ignore_status


def test_created_fields_own_nothing_of_an_object_with_only_server_fields() -> None:
    bare = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert created_fields(bare, root_node(CONFIGMAP), ignore_status=True) == {}


@given(deployment_configs)
def test_created_fields_match_the_flattened_paths_of_any_deployment(
    config: dict[str, Any],
) -> None:
    expected = fields_from_paths(config, DEPLOYMENT, ignore_status=True)
    assert created_fields(config, root_node(DEPLOYMENT), ignore_status=True) == expected


def test_a_create_records_the_created_fields_in_one_update_entry() -> None:
    created = record_update(None, deployment(2), "kubectl-create", api_version="apps/v1", now=T0)
    (entry,) = created["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl-create" and entry["operation"] == "Update"
    assert entry["time"] == T0
    assert entry["fieldsV1"] == fields_from_paths(deployment(2), DEPLOYMENT, ignore_status=True)
