"""The columns and cells Berth's Tables carry, checked against upstream kubectl's printers.

Every expectation here is what Kubernetes 1.37's ``pkg/printers/internalversion`` prints for
the same object (with wide columns, which the server always includes). Ages are measured from
a fixed ``NOW`` by monkeypatching ``printers.now``. No Django or database is needed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clusterapi.resources import printers
from clusterapi.resources.printers import (
    COLUMNS,
    DEFAULT_COLUMNS,
    column_definitions,
    columns_for,
    format_label_selector,
    format_labels,
    format_quantity,
    human_duration,
    table_row_cells,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp that long before NOW."""
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_ago(**delta: float) -> str:
    """A MicroTime (microsecond precision) timestamp that long before NOW."""
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def meta(name: str = "x", age_minutes: float = 5, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "default",
        "creationTimestamp": ago(minutes=age_minutes),
        **extra,
    }


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(printers, "now", lambda: NOW)


def names(kind: str) -> list[str]:
    return [column.name for column in columns_for(kind)]


def wide(kind: str) -> list[str]:
    return [column.name for column in columns_for(kind) if column.priority == 1]


def cell(kind: str, obj: dict[str, Any], column: str) -> Any:
    row = table_row_cells(kind, obj)
    return row[names(kind).index(column)]


# ---------------------------------------------------------------------------------------------
# Formatting rules shared by many kinds.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (300, "5m"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        # Under three hours kubectl still counts minutes: 2h15m prints as 135m.
        (2 * 3600 + 15 * 60, "135m"),
        (3 * 3600 + 15 * 60, "3h15m"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (8 * 3600 + 30 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (7 * 86400 + 23 * 3600, "7d23h"),
        (8 * 86400 + 5 * 3600, "8d"),
        (45 * 86400, "45d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        ((730 + 100) * 86400, "2y100d"),
        (8 * 365 * 86400 + 86400, "8y"),
        (-1.5, "0s"),
        (-3, "<invalid>"),
    ],
)
def test_human_duration_follows_kubectl_thresholds(seconds: float, expected: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == expected


def test_age_is_measured_from_creation_timestamp_against_injectable_now() -> None:
    obj = {"metadata": {"name": "cm", "creationTimestamp": ago(hours=3, minutes=15)}}
    assert cell("ConfigMap", obj, "Age") == "3h15m"


def test_age_accepts_fractional_and_offset_timestamps() -> None:
    # 11:58:59.5Z is 60.5s before NOW: whole seconds are truncated, as Go does.
    obj = {"metadata": {"name": "cm", "creationTimestamp": "2025-06-01T13:58:59.5+02:00"}}
    assert cell("ConfigMap", obj, "Age") == "60s"


def test_age_is_unknown_without_creation_timestamp() -> None:
    assert cell("ConfigMap", {"metadata": {"name": "cm"}}, "Age") == "<unknown>"


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("10Gi", "10Gi"),
        ("1.5Gi", "1536Mi"),
        ("1024Mi", "1Gi"),
        ("1000Mi", "1000Mi"),
        ("512", "512"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("1.5", "1500m"),
        ("0.5", "500m"),
        ("100m", "100m"),
        ("1e3", "1e3"),
        ("0.1n", "1n"),
        ("3.5Ki", "3584"),
        (4, "4"),
        (None, "0"),
        ("0", "0"),
        ("not-a-quantity", "not-a-quantity"),
    ],
)
def test_format_quantity_prints_the_canonical_form(quantity: Any, expected: str) -> None:
    assert format_quantity(quantity) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, "<none>"),
        ({}, "<none>"),
        ({"matchLabels": {"app": "web"}}, "app=web"),
        (
            {
                "matchLabels": {"tier": "front", "app": "web"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "zone", "operator": "NotIn", "values": ["a"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "owner", "operator": "Exists"},
                ],
            },
            "app=web,!canary,env in (dev,prod),owner,tier=front,zone notin (a)",
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Between"}]}, "<error>"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "<error>"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "<error>"),
        ({"matchLabels": {"bad key": "x"}}, "<error>"),
    ],
)
def test_format_label_selector_renders_like_metav1(selector: Any, expected: str) -> None:
    assert format_label_selector(selector) == expected


def test_format_labels_sorts_keys_and_prints_none_when_empty() -> None:
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"
    assert format_labels(None) == "<none>"


# ---------------------------------------------------------------------------------------------
# Column sets.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "Pod",
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates",
            ],
        ),
        (
            "Deployment",
            ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"],
        ),
        ("Service", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]),
        (
            "Node",
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime",
            ],
        ),
        (
            "Event",
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name",
            ],
        ),
        ("RoleBinding", ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]),
        ("ClusterRoleBinding", ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]),
        ("Role", ["Name", "Created At"]),
        ("ClusterRole", ["Name", "Created At"]),
        ("LimitRange", ["Name", "Created At"]),
        ("Namespace", ["Name", "Status", "Age"]),
        (
            "ReplicationController",
            ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"],
        ),
        ("Endpoints", ["Name", "Endpoints", "Age"]),
        ("ConfigMap", ["Name", "Data", "Age"]),
        ("Secret", ["Name", "Type", "Data", "Age"]),
        ("ServiceAccount", ["Name", "Secrets", "Age"]),
        (
            "PersistentVolume",
            [
                "Name",
                "Capacity",
                "Access Modes",
                "Reclaim Policy",
                "Status",
                "Claim",
                "StorageClass",
                "VolumeAttributesClass",
                "Reason",
                "Age",
                "VolumeMode",
            ],
        ),
        (
            "PersistentVolumeClaim",
            [
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "VolumeAttributesClass",
                "Age",
                "VolumeMode",
            ],
        ),
        ("ResourceQuota", ["Name", "Request", "Limit", "Age"]),
        (
            "ReplicaSet",
            ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"],
        ),
        ("StatefulSet", ["Name", "Ready", "Age", "Containers", "Images"]),
        (
            "DaemonSet",
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
        ),
        ("ControllerRevision", ["Name", "Controller", "Revision", "Age"]),
        (
            "Job",
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
        ),
        (
            "CronJob",
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
        ),
        ("Ingress", ["Name", "Class", "Hosts", "Address", "Ports", "Age"]),
        ("IngressClass", ["Name", "Controller", "Parameters", "Age"]),
        (
            "StorageClass",
            [
                "Name",
                "Provisioner",
                "ReclaimPolicy",
                "VolumeBindingMode",
                "AllowVolumeExpansion",
                "Age",
            ],
        ),
        ("Lease", ["Name", "Holder", "Age"]),
        ("EndpointSlice", ["Name", "AddressType", "Ports", "Endpoints", "Age"]),
        ("PriorityClass", ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]),
        (
            "PodDisruptionBudget",
            ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"],
        ),
    ],
)
def test_each_kind_has_upstreams_columns_in_order(kind: str, expected: list[str]) -> None:
    assert names(kind) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("Pod", ["IP", "Node", "Nominated Node", "Readiness Gates"]),
        ("Deployment", ["Containers", "Images", "Selector"]),
        ("Service", ["Selector"]),
        (
            "Node",
            ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"],
        ),
        ("Event", ["Subobject", "Source", "First Seen", "Count", "Name"]),
        ("RoleBinding", ["Users", "Groups", "ServiceAccounts"]),
        ("PersistentVolume", ["VolumeMode"]),
        ("StatefulSet", ["Containers", "Images"]),
        ("ConfigMap", []),
    ],
)
def test_wide_only_columns_have_priority_one(kind: str, expected: list[str]) -> None:
    assert wide(kind) == expected


def test_every_requested_kind_has_columns_and_name_is_the_name_formatted_column() -> None:
    kinds = {
        "Namespace",
        "Node",
        "Pod",
        "ReplicationController",
        "Service",
        "Endpoints",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Event",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "ResourceQuota",
        "LimitRange",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "ControllerRevision",
        "Job",
        "CronJob",
        "Ingress",
        "IngressClass",
        "StorageClass",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "Lease",
        "EndpointSlice",
        "PriorityClass",
        "PodDisruptionBudget",
    }
    assert set(COLUMNS) == kinds
    for kind, columns in COLUMNS.items():
        name_columns = [c for c in columns if c.format == "name"]
        assert [c.name for c in name_columns] == ["Name"], kind
        if kind != "Event":  # events lead with Last Seen, as upstream
            assert columns[0] is name_columns[0], kind
        assert all(c.description for c in columns), kind
        assert all(c.type in ("string", "integer", "boolean", "date") for c in columns), kind


def test_unknown_kinds_get_the_default_name_and_created_at_columns() -> None:
    assert columns_for("Widget") is DEFAULT_COLUMNS
    obj = {"metadata": {"name": "w", "creationTimestamp": "2025-05-31T10:00:00.5+00:00"}}
    assert table_row_cells("Widget", obj) == ["w", "2025-05-31T10:00:00Z"]
    assert table_row_cells("Widget", {}) == ["", "0001-01-01T00:00:00Z"]


def test_column_definitions_are_table_column_definition_json() -> None:
    definitions = column_definitions("Role")
    assert definitions[0]["name"] == "Name"
    assert definitions[0]["format"] == "name"
    assert definitions[0]["description"].startswith("Name must be unique within a namespace.")
    assert definitions[1] == {
        "name": "Created At",
        "type": "date",
        "format": "",
        "description": definitions[1]["description"],
        "priority": 0,
    }
    assert definitions[1]["description"].startswith("CreationTimestamp is a timestamp")
    restarts = column_definitions("Pod")[3]
    assert restarts["name"] == "Restarts"
    assert restarts["type"] == "string"
    assert {d["name"]: d["priority"] for d in column_definitions("Pod")}["IP"] == 1


# ---------------------------------------------------------------------------------------------
# One representative object per kind, with every cell.
# ---------------------------------------------------------------------------------------------

CONTAINERS = [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": CONTAINERS}}

REPRESENTATIVE: list[tuple[str, dict[str, Any], list[Any]]] = [
    (
        "Namespace",
        {"metadata": meta("team-a", 60 * 24 * 3), "status": {"phase": "Active"}},
        ["team-a", "Active", "3d"],
    ),
    (
        "Node",
        {
            "metadata": meta(
                "node-1",
                60 * 24 * 45,
                labels={
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/": "",
                    "kubernetes.io/role": "etcd",
                },
            ),
            "spec": {"unschedulable": True},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ],
                "addresses": [
                    {"type": "Hostname", "address": "node-1"},
                    {"type": "InternalIP", "address": "10.0.0.4"},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.37.0",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-18-amd64",
                    "containerRuntimeVersion": "containerd://2.0.0",
                },
            },
        },
        [
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane,etcd",
            "45d",
            "v1.37.0",
            "10.0.0.4",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0-18-amd64",
            "containerd://2.0.0",
        ],
    ),
    (
        "Pod",
        {
            "metadata": meta("web-0", 90),
            "spec": {"nodeName": "node-1", "containers": CONTAINERS},
            "status": {
                "phase": "Running",
                "podIP": "10.244.0.5",
                "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "web", "ready": True, "restartCount": 0, "state": {"running": {}}},
                    {"name": "log", "ready": True, "restartCount": 0, "state": {"running": {}}},
                ],
            },
        },
        ["web-0", "2/2", "Running", "0", "90m", "10.244.0.5", "node-1", "<none>", "<none>"],
    ),
    (
        "ReplicationController",
        {
            "metadata": meta("rc", 10),
            "spec": {"replicas": 3, "selector": {"app": "web"}, "template": TEMPLATE},
            "status": {"replicas": 3, "readyReplicas": 2},
        },
        ["rc", 3, 3, 2, "10m", "web,log", "nginx:1.27,busybox", "app=web"],
    ),
    (
        "Service",
        {
            "metadata": meta("web", 20),
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ports": [
                    {"port": 80, "protocol": "TCP", "nodePort": 30080},
                    {"port": 53, "protocol": "UDP"},
                ],
                "selector": {"app": "web"},
            },
        },
        ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "20m", "app=web"],
    ),
    (
        "Endpoints",
        {
            "metadata": meta("web", 20),
            "subsets": [
                {
                    "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                    "ports": [{"port": 80}, {"port": 443}],
                }
            ],
        },
        ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "20m"],
    ),
    (
        "ConfigMap",
        {"metadata": meta("cfg", 1), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
        ["cfg", 3, "60s"],
    ),
    (
        "Secret",
        {"metadata": meta("tls", 1), "type": "kubernetes.io/tls", "data": {"a": "", "b": ""}},
        ["tls", "kubernetes.io/tls", 2, "60s"],
    ),
    (
        "ServiceAccount",
        {"metadata": meta("default", 200), "secrets": [{"name": "token"}]},
        ["default", 1, "3h20m"],
    ),
    (
        "Event",
        {
            "metadata": meta("web-0.17f", 10),
            "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{web}"},
            "reason": "BackOff",
            "message": "Back-off restarting failed container\n",
            "type": "Warning",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ago(minutes=10),
            "lastTimestamp": ago(seconds=30),
            "count": 7,
        },
        [
            "30s",
            "Warning",
            "BackOff",
            "pod/web-0",
            "spec.containers{web}",
            "kubelet, node-1",
            "Back-off restarting failed container",
            "10m",
            7,
            "web-0.17f",
        ],
    ),
    (
        "PersistentVolume",
        {
            "metadata": meta("pv-1", 60),
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"],
                "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"namespace": "default", "name": "data"},
                "storageClassName": "fast",
                "volumeMode": "Block",
            },
            "status": {"phase": "Bound"},
        },
        [
            "pv-1",
            "10Gi",
            "RWO,RWX,RWOP",
            "Delete",
            "Bound",
            "default/data",
            "fast",
            "<unset>",
            "",
            "60m",
            "Block",
        ],
    ),
    (
        "PersistentVolumeClaim",
        {
            "metadata": meta("data", 60),
            "spec": {
                "volumeName": "pv-1",
                "storageClassName": "fast",
                "volumeAttributesClassName": "gold",
                "resources": {"requests": {"storage": "1Gi"}},
            },
            "status": {
                "phase": "Bound",
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadOnlyMany"],
            },
        },
        ["data", "Bound", "pv-1", "10Gi", "ROX", "fast", "gold", "60m", "Filesystem"],
    ),
    (
        "ResourceQuota",
        {
            "metadata": meta("compute", 30),
            "status": {
                "hard": {
                    "pods": "10",
                    "requests.cpu": "1",
                    "limits.memory": "2Gi",
                    "limits.cpu": "2",
                },
                "used": {"pods": "3", "requests.cpu": "500m", "limits.cpu": "1500m"},
            },
        },
        [
            "compute",
            "pods: 3/10, requests.cpu: 500m/1",
            "limits.cpu: 1500m/2, limits.memory: 0/2Gi",
            "30m",
        ],
    ),
    (
        "LimitRange",
        {"metadata": meta("limits", 30), "spec": {"limits": []}},
        ["limits", "2025-06-01T11:30:00Z"],
    ),
    (
        "Deployment",
        {
            "metadata": meta("web", 60 * 24 * 3 + 60 * 4),
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": TEMPLATE,
            },
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        },
        ["web", "2/3", 3, 2, "3d4h", "web,log", "nginx:1.27,busybox", "app=web"],
    ),
    (
        "ReplicaSet",
        {
            "metadata": meta("web-5d8f", 5),
            "spec": {
                "replicas": 2,
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [
                        {"key": "pod-template-hash", "operator": "In", "values": ["5d8f"]}
                    ],
                },
                "template": TEMPLATE,
            },
            "status": {"replicas": 2, "readyReplicas": 1},
        },
        [
            "web-5d8f",
            2,
            2,
            1,
            "5m",
            "web,log",
            "nginx:1.27,busybox",
            "app=web,pod-template-hash in (5d8f)",
        ],
    ),
    (
        "StatefulSet",
        {
            "metadata": meta("db", 5),
            "spec": {"replicas": 3, "template": TEMPLATE},
            "status": {"readyReplicas": 3},
        },
        ["db", "3/3", "5m", "web,log", "nginx:1.27,busybox"],
    ),
    (
        "DaemonSet",
        {
            "metadata": meta("agent", 5),
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "spec": {
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "agent", "image": "agent:1"}],
                    }
                },
            },
            "status": {
                "desiredNumberScheduled": 3,
                "currentNumberScheduled": 3,
                "numberReady": 2,
                "updatedNumberScheduled": 3,
                "numberAvailable": 2,
            },
        },
        ["agent", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "5m", "agent", "agent:1", "app=agent"],
    ),
    (
        "ControllerRevision",
        {
            "metadata": meta(
                "agent-7c9",
                5,
                ownerReferences=[
                    {"apiVersion": "v1", "kind": "Pod", "name": "other"},
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": "agent",
                        "controller": True,
                    },
                ],
            ),
            "revision": 4,
        },
        ["agent-7c9", "daemonset.apps/agent", 4, "5m"],
    ),
    (
        "Job",
        {
            "metadata": meta("pi", 10),
            "spec": {
                "completions": 3,
                "parallelism": 3,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5"}]}},
            },
            "status": {
                "succeeded": 3,
                "startTime": ago(minutes=10),
                "completionTime": ago(minutes=6, seconds=40),
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ],
            },
        },
        [
            "pi",
            "Complete",
            "3/3",
            "3m20s",
            "10m",
            "pi",
            "perl:5",
            "batch.kubernetes.io/controller-uid=abc",
        ],
    ),
    (
        "CronJob",
        {
            "metadata": meta("nightly", 60 * 24 * 10),
            "spec": {
                "schedule": "0 3 * * *",
                "timeZone": "Europe/Paris",
                "suspend": False,
                "jobTemplate": {
                    "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:1"}]}}}
                },
            },
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(hours=9)},
        },
        ["nightly", "0 3 * * *", "Europe/Paris", "False", 1, "9h", "10d", "b", "b:1", "<none>"],
    ),
    (
        "Ingress",
        {
            "metadata": meta("web", 5),
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                "tls": [{"hosts": ["a.example.com"]}],
            },
            "status": {
                "loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}
            },
        },
        [
            "web",
            "nginx",
            "a.example.com,b.example.com",
            "203.0.113.9,lb.example.com",
            "80, 443",
            "5m",
        ],
    ),
    (
        "IngressClass",
        {
            "metadata": meta("nginx", 5),
            "spec": {
                "controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"},
            },
        },
        ["nginx", "k8s.io/ingress-nginx", "Params.k8s.example.com/p", "5m"],
    ),
    (
        "StorageClass",
        {
            "metadata": meta(
                "standard",
                5,
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
            ),
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
        },
        [
            "standard (default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            False,
            "5m",
        ],
    ),
    (
        "Role",
        {"metadata": meta("reader", 5), "rules": []},
        ["reader", "2025-06-01T11:55:00Z"],
    ),
    (
        "ClusterRole",
        {"metadata": {"name": "admin", "creationTimestamp": "2024-01-02T03:04:05Z"}},
        ["admin", "2024-01-02T03:04:05Z"],
    ),
    (
        "RoleBinding",
        {
            "metadata": meta("read", 5),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
            ],
        },
        ["read", "Role/reader", "5m", "alice, bob", "devs", "build/ci"],
    ),
    (
        "ClusterRoleBinding",
        {
            "metadata": meta("admins", 5),
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "system:masters"}],
        },
        ["admins", "ClusterRole/cluster-admin", "5m", "", "system:masters", ""],
    ),
    (
        "Lease",
        {"metadata": meta("node-1", 5), "spec": {"holderIdentity": "node-1"}},
        ["node-1", "node-1", "5m"],
    ),
    (
        "EndpointSlice",
        {
            "metadata": meta("web-abc", 5),
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}],
            "endpoints": [
                {"addresses": ["10.0.0.1"]},
                {"addresses": ["10.0.0.2"]},
                {"addresses": ["10.0.0.3"]},
                {"addresses": ["10.0.0.4"]},
            ],
        },
        ["web-abc", "IPv4", "80,metrics,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "5m"],
    ),
    (
        "PriorityClass",
        {"metadata": meta("high", 5), "value": 1000000, "globalDefault": True},
        ["high", 1000000, True, "5m", "PreemptLowerPriority"],
    ),
    (
        "PodDisruptionBudget",
        {
            "metadata": meta("web", 5),
            "spec": {"minAvailable": "50%"},
            "status": {"disruptionsAllowed": 1},
        },
        ["web", "50%", "N/A", 1, "5m"],
    ),
]


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    REPRESENTATIVE,
    ids=[kind for kind, _, _ in REPRESENTATIVE],
)
def test_representative_object_prints_upstreams_cells(
    kind: str, obj: dict[str, Any], expected: list[Any]
) -> None:
    assert table_row_cells(kind, obj) == expected


def test_representative_objects_cover_every_kind() -> None:
    assert {kind for kind, _, _ in REPRESENTATIVE} == set(COLUMNS)


# ---------------------------------------------------------------------------------------------
# Pod Ready / Status / Restarts.
# ---------------------------------------------------------------------------------------------


def pod(
    status: dict[str, Any] | None = None,
    containers: int = 1,
    init: list[dict[str, Any]] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": meta("p", **metadata),
        "spec": {"containers": [{"name": f"c{i}", "image": "img"} for i in range(containers)]},
    }
    if init is not None:
        obj["spec"]["initContainers"] = init
    if status is not None:
        obj["status"] = status
    return obj


def summary(obj: dict[str, Any]) -> tuple[str, str, str]:
    ready, status, restarts = table_row_cells("Pod", obj)[1:4]
    return ready, status, restarts


def running(name: str = "c0", ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {}}}


INIT_ONE = [{"name": "init", "image": "img"}]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(pod(), ("0/1", "Pending", "0"), id="fresh-pod-without-status"),
        pytest.param(
            pod({"phase": "Pending"}, containers=2), ("0/2", "Pending", "0"), id="pending"
        ),
        pytest.param(
            pod({"phase": "Running", "containerStatuses": [running()]}),
            ("1/1", "Running", "0"),
            id="running",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "c0",
                            "ready": False,
                            "restartCount": 5,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {
                                "terminated": {"exitCode": 1, "finishedAt": ago(minutes=5)}
                            },
                        }
                    ],
                }
            ),
            ("0/1", "CrashLoopBackOff", "5 (5m ago)"),
            id="crash-loop-with-last-restart",
        ),
        pytest.param(
            pod({"phase": "Running", "containerStatuses": [running(restarts=2)]}),
            ("1/1", "Running", "2"),
            id="restarts-without-termination-time",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "init", "state": {"running": {}}, "restartCount": 0}
                    ],
                },
                init=INIT_ONE,
            ),
            ("0/1", "Init:0/1", "0"),
            id="init-running",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {
                            "name": "init",
                            "state": {"waiting": {"reason": "PodInitializing"}},
                        }
                    ],
                },
                init=INIT_ONE,
            ),
            ("0/1", "Init:0/1", "0"),
            id="init-pod-initializing-counts-as-progress",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "a", "state": {"terminated": {"exitCode": 0}}},
                        {
                            "name": "b",
                            "restartCount": 3,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        },
                    ],
                },
                init=[{"name": "a"}, {"name": "b"}],
            ),
            ("0/1", "Init:CrashLoopBackOff", "3"),
            id="init-crash-loop",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "init", "state": {"terminated": {"exitCode": 2}}}
                    ],
                },
                init=INIT_ONE,
            ),
            ("0/1", "Init:ExitCode:2", "0"),
            id="init-exit-code",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "init", "state": {"terminated": {"exitCode": 137, "signal": 9}}}
                    ],
                },
                init=INIT_ONE,
            ),
            ("0/1", "Init:Signal:9", "0"),
            id="init-signal",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {
                            "name": "init",
                            "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                        }
                    ],
                },
                init=INIT_ONE,
            ),
            ("0/1", "Init:Error", "0"),
            id="init-terminated-reason",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [
                        {
                            "name": "sidecar",
                            "started": True,
                            "ready": True,
                            "restartCount": 1,
                            "state": {"running": {}},
                            "lastState": {"terminated": {"finishedAt": ago(minutes=2)}},
                        }
                    ],
                    "containerStatuses": [running()],
                },
                init=[{"name": "sidecar", "restartPolicy": "Always"}],
            ),
            ("2/2", "Running", "1 (2m ago)"),
            id="sidecar-counts-as-container",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "c0",
                            "state": {"waiting": {"reason": "ContainerCreating"}},
                        }
                    ],
                }
            ),
            ("0/1", "ContainerCreating", "0"),
            id="waiting-reason",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        {
                            "name": "c0",
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                        }
                    ],
                }
            ),
            ("0/1", "Completed", "0"),
            id="completed",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Failed",
                    "containerStatuses": [{"name": "c0", "state": {"terminated": {"exitCode": 3}}}],
                }
            ),
            ("0/1", "ExitCode:3", "0"),
            id="terminated-without-reason",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        running("c0"),
                        {
                            "name": "c1",
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                        },
                    ],
                },
                containers=2,
            ),
            ("1/2", "NotReady", "0"),
            id="completed-with-a-running-container-not-ready",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [
                        running("c0"),
                        {
                            "name": "c1",
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                        },
                    ],
                },
                containers=2,
            ),
            ("1/2", "Running", "0"),
            id="completed-with-a-running-container-ready",
        ),
        pytest.param(
            pod(
                {"phase": "Running", "containerStatuses": [running()]},
                deletionTimestamp=ago(seconds=3),
            ),
            ("1/1", "Terminating", "0"),
            id="terminating",
        ),
        pytest.param(
            pod({"phase": "Succeeded"}, deletionTimestamp=ago(seconds=3)),
            ("0/1", "Succeeded", "0"),
            id="deleted-terminal-pod-keeps-phase",
        ),
        pytest.param(
            pod(
                {"phase": "Running", "reason": "NodeLost", "containerStatuses": [running()]},
                deletionTimestamp=ago(seconds=3),
            ),
            ("1/1", "Unknown", "0"),
            id="node-lost",
        ),
        pytest.param(
            pod({"phase": "Failed", "reason": "Evicted"}),
            ("0/1", "Evicted", "0"),
            id="status-reason",
        ),
        pytest.param(
            pod(
                {
                    "phase": "Pending",
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                    ],
                }
            ),
            ("0/1", "SchedulingGated", "0"),
            id="scheduling-gated",
        ),
    ],
)
def test_pod_ready_status_and_restarts_follow_kubectl(
    obj: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    assert summary(obj) == expected


def test_pod_restarts_report_the_most_recent_termination() -> None:
    obj = pod(
        {
            "phase": "Running",
            "containerStatuses": [
                {
                    **running("c0", restarts=1),
                    "lastState": {"terminated": {"finishedAt": ago(hours=3)}},
                },
                {
                    **running("c1", restarts=2),
                    "lastState": {"terminated": {"finishedAt": ago(seconds=45)}},
                },
            ],
        },
        containers=2,
    )
    assert summary(obj) == ("2/2", "Running", "3 (45s ago)")


def test_pod_wide_cells_fall_back_to_none_and_count_readiness_gates() -> None:
    obj = pod(
        {
            "phase": "Running",
            "podIP": "10.0.0.9",
            "nominatedNodeName": "node-2",
            "conditions": [
                {"type": "example.com/lb", "status": "True"},
                {"type": "example.com/dns", "status": "False"},
            ],
        }
    )
    obj["spec"]["readinessGates"] = [
        {"conditionType": "example.com/lb"},
        {"conditionType": "example.com/dns"},
        {"conditionType": "example.com/missing"},
    ]
    assert table_row_cells("Pod", obj)[5:] == ["10.0.0.9", "<none>", "node-2", "1/3"]


# ---------------------------------------------------------------------------------------------
# Other status rules.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "unschedulable", "expected"),
    [
        ([{"type": "Ready", "status": "True"}], False, "Ready"),
        ([{"type": "Ready", "status": "False"}], False, "NotReady"),
        ([{"type": "Ready", "status": "Unknown"}], True, "NotReady,SchedulingDisabled"),
        ([], False, "Unknown"),
        ([{"type": "DiskPressure", "status": "True"}], True, "Unknown,SchedulingDisabled"),
    ],
)
def test_node_status(conditions: list[Any], unschedulable: bool, expected: str) -> None:
    node = {
        "metadata": meta("n"),
        "spec": {"unschedulable": unschedulable},
        "status": {"conditions": conditions},
    }
    assert cell("Node", node, "Status") == expected


def test_node_without_roles_or_info_prints_placeholders() -> None:
    cells = table_row_cells("Node", {"metadata": meta("n")})
    assert cells[1:] == [
        "Unknown",
        "<none>",
        "5m",
        "",
        "<none>",
        "<none>",
        "<unknown>",
        "<unknown>",
        "<unknown>",
    ]


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        ({"type": "ClusterIP", "clusterIPs": ["10.96.0.1"]}, {}, "<none>"),
        ({"type": "ClusterIP", "externalIPs": ["1.2.3.4", "5.6.7.8"]}, {}, "1.2.3.4,5.6.7.8"),
        ({"type": "LoadBalancer"}, {}, "<pending>"),
        (
            {"type": "LoadBalancer"},
            {"loadBalancer": {"ingress": [{"ip": "203.0.113.2"}, {"ip": "203.0.113.1"}]}},
            "203.0.113.1,203.0.113.2",
        ),
        (
            {"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]},
            {"loadBalancer": {"ingress": [{"hostname": "a-very-long-hostname.elb.example.com"}]}},
            "a-very-long-hostname.elb.example.com,1.2.3.4",
        ),
        ({"type": "ExternalName", "externalName": "db.example.com"}, {}, "db.example.com"),
        ({"type": "Weird"}, {}, "<unknown>"),
    ],
)
def test_service_external_ip(spec: dict[str, Any], status: dict[str, Any], expected: str) -> None:
    service = {"metadata": meta("s"), "spec": spec, "status": status}
    assert cell("Service", service, "External-IP") == expected


def test_service_without_defaults_prints_like_a_defaulted_cluster_ip_service() -> None:
    service = {
        "metadata": meta("s"),
        "spec": {"clusterIP": "None", "ports": [{"port": 5432}]},
    }
    assert table_row_cells("Service", service) == [
        "s",
        "ClusterIP",
        "None",
        "<none>",
        "5432/TCP",
        "5m",
        "<none>",
    ]


def test_endpoints_without_subsets_and_headless_without_ports() -> None:
    assert cell("Endpoints", {"metadata": meta("e")}, "Endpoints") == "<none>"
    headless = {
        "metadata": meta("e"),
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}],
    }
    assert cell("Endpoints", headless, "Endpoints") == "10.0.0.1,fd00::1"
    ipv6 = {
        "metadata": meta("e"),
        "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}],
    }
    assert cell("Endpoints", ipv6, "Endpoints") == "[fd00::1]:80"


def test_endpoint_slice_without_ports_or_endpoints_prints_unset() -> None:
    assert table_row_cells("EndpointSlice", {"metadata": meta("s"), "addressType": "IPv6"})[
        1:4
    ] == ["IPv6", "<unset>", "<unset>"]


def test_ingress_hosts_count_every_rule_beyond_three() -> None:
    rules = [{"host": f"h{i}.example.com"} for i in range(4)] + [{}]
    ingress = {"metadata": meta("i"), "spec": {"rules": rules}}
    assert cell("Ingress", ingress, "Hosts") == (
        "h0.example.com,h1.example.com,h2.example.com + 2 more..."
    )
    catch_all = {"metadata": meta("i"), "spec": {"defaultBackend": {}, "rules": [{}]}}
    assert table_row_cells("Ingress", catch_all)[1:5] == ["<none>", "*", "", "80"]


def test_event_last_seen_prefers_series_then_last_then_first_then_event_time() -> None:
    base = {"metadata": meta("e"), "involvedObject": {"kind": "Node"}}
    series = {
        **base,
        "eventTime": micro_ago(hours=1),
        "series": {"count": 4, "lastObservedTime": micro_ago(seconds=20)},
    }
    assert [cell("Event", series, c) for c in ("Last Seen", "First Seen", "Count")] == [
        "20s",
        "60m",
        4,
    ]
    only_event_time = {**base, "eventTime": micro_ago(minutes=3)}
    assert [cell("Event", only_event_time, c) for c in ("Last Seen", "First Seen", "Count")] == [
        "3m",
        "3m",
        1,
    ]
    no_times = {**base, "count": 2}
    assert [cell("Event", no_times, c) for c in ("Last Seen", "First Seen", "Count")] == [
        "<unknown>",
        "<unknown>",
        2,
    ]
    assert cell("Event", base, "Object") == "node"


def test_event_source_falls_back_to_reporting_controller() -> None:
    event = {
        "metadata": meta("e"),
        "reportingComponent": "default-scheduler",
        "reportingInstance": "sched-1",
    }
    assert cell("Event", event, "Source") == "default-scheduler, sched-1"
    assert cell("Event", {"source": {"component": "kubelet"}}, "Source") == "kubelet"


@pytest.mark.parametrize(
    ("conditions", "deleting", "expected"),
    [
        ([], False, "Running"),
        ([{"type": "Failed", "status": "True"}], True, "Failed"),
        ([{"type": "Complete", "status": "False"}], True, "Terminating"),
        ([{"type": "Suspended", "status": "True"}], False, "Suspended"),
        ([{"type": "FailureTarget", "status": "True"}], False, "FailureTarget"),
        ([{"type": "SuccessCriteriaMet", "status": "True"}], False, "SuccessCriteriaMet"),
    ],
)
def test_job_status(conditions: list[Any], deleting: bool, expected: str) -> None:
    metadata = meta("j")
    if deleting:
        metadata["deletionTimestamp"] = ago(seconds=1)
    job = {"metadata": metadata, "status": {"conditions": conditions}}
    assert cell("Job", job, "Status") == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, "0/1"),
        ({"completions": 1, "parallelism": 1}, "0/1"),
        ({"completions": 5}, "0/5"),
        ({"parallelism": 3}, "0/1 of 3"),
    ],
)
def test_job_completions(spec: dict[str, Any], expected: str) -> None:
    assert cell("Job", {"metadata": meta("j"), "spec": spec}, "Completions") == expected


def test_running_job_duration_is_measured_until_now() -> None:
    job = {"metadata": meta("j"), "status": {"startTime": ago(minutes=2, seconds=5)}}
    assert cell("Job", job, "Duration") == "2m5s"
    assert cell("Job", {"metadata": meta("j")}, "Duration") == ""


def test_cron_job_defaults() -> None:
    cron_job = {"metadata": meta("c"), "spec": {"schedule": "*/5 * * * *", "suspend": True}}
    assert table_row_cells("CronJob", cron_job)[1:6] == [
        "*/5 * * * *",
        "<none>",
        "True",
        0,
        "<none>",
    ]


def test_persistent_volume_claim_shows_capacity_only_once_bound() -> None:
    claim = {
        "metadata": meta("c", annotations={"volume.beta.kubernetes.io/storage-class": "old"}),
        "spec": {"storageClassName": "new", "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending", "capacity": {"storage": "1Gi"}},
    }
    assert table_row_cells("PersistentVolumeClaim", claim)[1:7] == [
        "Pending",
        "",
        "",
        "",
        "old",
        "<unset>",
    ]


def test_deleting_volumes_are_terminating_and_unset_fields_use_defaults() -> None:
    volume = {"metadata": meta("v", deletionTimestamp=ago(seconds=1))}
    assert table_row_cells("PersistentVolume", volume) == [
        "v",
        "0",
        "",
        "Retain",
        "Terminating",
        "",
        "",
        "<unset>",
        "",
        "5m",
        "Filesystem",
    ]


def test_deployment_selector_is_empty_rather_than_none_and_invalid_on_error() -> None:
    deployment = {"metadata": meta("d"), "spec": {"selector": {}}}
    assert cell("Deployment", deployment, "Selector") == ""
    deployment["spec"]["selector"] = {"matchExpressions": [{"key": "a", "operator": "Nope"}]}
    assert cell("Deployment", deployment, "Selector") == "<invalid>"
    assert cell("Deployment", {"metadata": meta("d")}, "Ready") == "0/1"


def test_pod_disruption_budget_integers_print_as_numbers() -> None:
    budget = {"metadata": meta("b"), "spec": {"maxUnavailable": 1}}
    assert table_row_cells("PodDisruptionBudget", budget)[1:4] == ["N/A", "1", 0]


def test_controller_revision_without_controller() -> None:
    assert cell("ControllerRevision", {"metadata": meta("r")}, "Controller") == "<none>"


# ---------------------------------------------------------------------------------------------
# Robustness: partial and malformed objects.
# ---------------------------------------------------------------------------------------------

PARTIAL_OBJECTS: list[dict[str, Any]] = [
    {},
    {"metadata": None, "spec": None, "status": None},
    {"metadata": {"name": "x"}, "spec": {}, "status": {}},
    {
        "metadata": {"name": 5, "labels": "oops", "creationTimestamp": "yesterday"},
        "spec": {
            "containers": "nope",
            "initContainers": [None, 3],
            "ports": [None, {"port": "http"}],
            "selector": ["a"],
            "template": {"spec": None},
            "rules": "x",
            "capacity": {"storage": {}},
            "accessModes": [{}, ["RWO"]],
            "replicas": "three",
        },
        "status": {
            "conditions": [None, "Ready"],
            "containerStatuses": [None, {"state": None, "lastState": {"terminated": 7}}],
            "initContainerStatuses": [{"state": {"terminated": {"exitCode": "x"}}}],
            "hard": {"cpu": None},
            "loadBalancer": {"ingress": [None]},
            "podIPs": "10.0.0.1",
        },
        "subsets": [{"addresses": None, "ports": [None]}],
        "series": "x",
        "involvedObject": None,
        "endpoints": [{"addresses": None}],
        "roleRef": None,
        "subjects": [None],
        "data": ["a"],
    },
]


@pytest.mark.parametrize("kind", sorted(COLUMNS))
@pytest.mark.parametrize("obj", PARTIAL_OBJECTS, ids=["empty", "nulls", "bare", "garbage"])
def test_cells_never_raise_on_partial_objects(kind: str, obj: dict[str, Any]) -> None:
    # Call each cell directly: the guard in table_row_cells must not be what saves us.
    for column in columns_for(kind):
        value = column.cell(obj)
        assert isinstance(value, str | int), (kind, column.name, value)
    assert len(table_row_cells(kind, obj)) == len(columns_for(kind))


def storage_class(name: str, age_minutes: float, default: bool) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": meta(name, age_minutes, annotations=annotations), "provisioner": "p"}


def test_only_the_effective_default_storage_class_is_marked_when_peers_are_known() -> None:
    classes = [
        storage_class("old", 60, default=True),
        storage_class("new", 5, default=True),
        storage_class("plain", 1, default=False),
    ]
    assert printers.effective_default_storage_class(classes) == "new"
    assert [table_row_cells("StorageClass", sc, peers=classes)[0] for sc in classes] == [
        "old",
        "new (default)",
        "plain",
    ]
    # Without peers every annotated class is marked (upstream's fallback too).
    assert table_row_cells("StorageClass", classes[0])[0] == "old (default)"


def test_effective_default_storage_class_ties_go_to_the_first_name() -> None:
    classes = [storage_class("b", 5, default=True), storage_class("a", 5, default=True)]
    assert printers.effective_default_storage_class(classes) == "a"
    assert printers.effective_default_storage_class([storage_class("x", 1, False)]) is None
