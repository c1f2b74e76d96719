"""End to end: clients inside pods reach the API with their service account's own token.

A live server and two process-runtime agents: one deciding at run time how pods find their
token (``auto``: a mount namespace per container where the machine allows it, as on a root
test machine), one told not to use mount namespaces (``off``: ``KUBECONFIG`` with an exec
credential). On each, pods run the official Python client and kubectl (both from this
virtualenv) against the API: the namespace's ``default`` account may list pods (a
RoleBinding), the ``nobody`` account may not (403, in its own name), and a pod that opts out
of automounting has no token at all.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import KUBECTL, AgentProcess, Kubectl, LiveServer, apply, wait_for

pytestmark = pytest.mark.e2e

NS = "incluster"
PY = sys.executable

# What the Python client does in a pod: in-cluster configuration (``load_incluster_config``
# with a mount namespace, ``load_config`` — KUBECONFIG — without), then list the pods of its
# namespace. The standard path is built at run time from the client's own constant, so that
# the runtime's rewriting of mount paths in arguments cannot stand in for the mount.
CLIENT = """
import base64, json, os, sys
from kubernetes import client, config
mode = sys.argv[1]
if mode == "namespace":
    config.load_incluster_config()
    directory = os.path.dirname(config.incluster_config.SERVICE_TOKEN_FILENAME)
    namespace = open(os.path.join(directory, "namespace")).read().strip()
else:
    assert "KUBECONFIG" in os.environ, "no KUBECONFIG"
    config.load_config()
    namespace = config.list_kube_config_contexts()[1]["context"]["namespace"]
token = client.Configuration.get_default_copy().api_key["BearerToken"].split()[-1]
payload = token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
print("kubeconfig", os.environ.get("KUBECONFIG", "-"))
print("subject", claims["sub"])
print("bound-to", claims["kubernetes.io"]["pod"]["name"])
print("server", client.Configuration.get_default_copy().host)
try:
    for pod in client.CoreV1Api().list_namespaced_pod(namespace).items:
        print("pod", pod.metadata.name)
except client.ApiException as exc:
    print("status", exc.status)
    print("message", json.loads(exc.body)["message"])
"""

NO_TOKEN = """
import os
from kubernetes import config
token = config.incluster_config.SERVICE_TOKEN_FILENAME
print("token file", os.path.exists(token))
print("KUBECONFIG", os.environ.get("KUBECONFIG", "-"))
try:
    config.load_config()
    print("configured")
except config.ConfigException as exc:
    print("no configuration:", type(exc).__name__)
"""


def node_ready(kubectl: Kubectl, name: str) -> bool:
    result = kubectl.run("get", "node", name, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    node = json.loads(result.stdout)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


@pytest.fixture(scope="module")
def cluster(live_server_berth: LiveServer, kubectl: Kubectl) -> Iterator[Kubectl]:
    """The namespace, its accounts and RBAC, and the two agents."""
    server = live_server_berth
    agents = [
        AgentProcess(
            server,
            name,
            options=("--port", "0", "--data-dir", str(server.data_dir / f"node-{name}")),
            env={"BERTH_POD_MOUNT_NAMESPACE": setting, "BERTH_BACKOFF_BASE_SECONDS": "0.5"},
        )
        for name, setting in (("ic-auto", "auto"), ("ic-off", "off"))
    ]
    kubectl("create", "namespace", NS)
    apply(
        kubectl,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "nobody", "namespace": NS},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": NS},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "default-reads-pods", "namespace": NS},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}],
        },
    )
    # Both made by the control plane's loops: the default account and the CA bundle.
    wait_for(
        lambda: (
            kubectl.run("get", "serviceaccount", "default", "-n", NS, check=False).returncode == 0
        ),
        60,
        "the default service account",
    )
    wait_for(
        lambda: (
            kubectl.run("get", "configmap", "kube-root-ca.crt", "-n", NS, check=False).returncode
            == 0
        ),
        60,
        "kube-root-ca.crt",
    )
    for agent in agents:
        agent.start()
    try:
        for agent in agents:
            ready = functools.partial(node_ready, kubectl, agent.name)
            wait_for(ready, 60, f"node {agent.name} Ready")
        yield kubectl
    finally:
        for agent in agents:
            agent.stop()


def run_pod(kubectl: Kubectl, name: str, node: str, command: list[str], **spec: Any) -> str:
    """Run a one-shot pod on ``node``; its logs once it has finished."""
    apply(
        kubectl,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "nodeName": node,
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "python:3.12", "command": command}],
                **spec,
            },
        },
    )

    def finished() -> str:
        pod = json.loads(kubectl("get", "pod", name, "-n", NS, "-o", "json"))
        phase = str(pod.get("status", {}).get("phase", ""))
        return phase if phase in ("Succeeded", "Failed") else ""

    wait_for(finished, 90, f"pod {name} to finish")
    return kubectl("logs", name, "-n", NS)


def lines(text: str, prefix: str) -> list[str]:
    return [line[len(prefix) + 1 :] for line in text.splitlines() if line.startswith(prefix + " ")]


@functools.cache
def machine_allows_mount_namespaces() -> bool:
    """What the ``auto`` agent finds on this machine (the same probe, as the same user)."""
    from clusterapi.nodeagent.runtimes.process import incluster

    with tempfile.TemporaryDirectory() as scratch:
        return asyncio.run(incluster.decide(Path(scratch))).namespace


def expected_mode(node: str) -> str:
    """The ``auto`` agent must use a mount namespace wherever the machine allows one."""
    if node == "ic-auto" and machine_allows_mount_namespaces():
        return "namespace"
    return "kubeconfig"


NODES = ["ic-auto", "ic-off"]
HOST_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@pytest.mark.parametrize("node", NODES)
def test_python_client_and_kubectl_list_pods_with_the_pods_own_token(
    cluster: Kubectl, live_server_berth: LiveServer, node: str
) -> None:
    kubectl, mode = cluster, expected_mode(node)
    python_pod = f"py-{node}"
    output = run_pod(kubectl, python_pod, node, [PY, "-c", CLIENT, mode])
    [kubeconfig] = lines(output, "kubeconfig")
    if mode == "namespace":
        assert kubeconfig == "-"  # nothing but the standard path
    else:
        assert kubeconfig.endswith("/kube/main.kubeconfig")
    assert lines(output, "subject") == [f"system:serviceaccount:{NS}:default"], output
    assert lines(output, "bound-to") == [python_pod]
    [server] = lines(output, "server")
    assert server == live_server_berth.url
    assert python_pod in lines(output, "pod"), output

    kubectl_pod = f"kubectl-{node}"
    listed = run_pod(kubectl, kubectl_pod, node, [str(KUBECTL), "get", "pods", "-o", "name"])
    names = {line.removeprefix("pod/") for line in listed.split()}
    assert {python_pod, kubectl_pod} <= names, listed
    spec = json.loads(kubectl("get", "pod", kubectl_pod, "-n", NS, "-o", "json"))["spec"]
    assert spec["serviceAccountName"] == "default"
    assert spec["volumes"][0]["name"].startswith("kube-api-access-")


@pytest.mark.parametrize("node", NODES)
def test_an_account_without_the_binding_is_forbidden_in_its_own_name(
    cluster: Kubectl, live_server_berth: LiveServer, node: str
) -> None:
    kubectl, mode = cluster, expected_mode(node)
    output = run_pod(
        kubectl, f"nobody-py-{node}", node, [PY, "-c", CLIENT, mode], serviceAccountName="nobody"
    )
    assert lines(output, "subject") == [f"system:serviceaccount:{NS}:nobody"], output
    assert lines(output, "status") == ["403"], output
    [message] = lines(output, "message")
    assert f'User "system:serviceaccount:{NS}:nobody" cannot list resource "pods"' in message
    refused = run_pod(
        kubectl,
        f"nobody-kubectl-{node}",
        node,
        [str(KUBECTL), "get", "pods", "-o", "name"],
        serviceAccountName="nobody",
    )
    assert "Error from server (Forbidden)" in refused, refused
    assert f"system:serviceaccount:{NS}:nobody" in refused


@pytest.mark.parametrize("node", NODES)
def test_automount_false_gives_no_token(cluster: Kubectl, node: str) -> None:
    kubectl = cluster
    output = run_pod(
        kubectl, f"no-token-{node}", node, [PY, "-c", NO_TOKEN], automountServiceAccountToken=False
    )
    assert "KUBECONFIG -" in output, output
    # Without a mount namespace the process sees the host's own directory there, which holds
    # a token of the host's where the machine is itself a Kubernetes pod.
    if expected_mode(node) == "namespace" or not Path(HOST_TOKEN).exists():
        assert "token file False" in output, output
        assert "no configuration: ConfigException" in output
    spec = json.loads(kubectl("get", "pod", f"no-token-{node}", "-n", NS, "-o", "json"))["spec"]
    assert "volumes" not in spec


@pytest.mark.parametrize("node", NODES)
def test_kubectl_exec_into_a_pod_runs_kubectl_as_its_account(cluster: Kubectl, node: str) -> None:
    kubectl = cluster
    name = f"shell-{node}"
    apply(
        kubectl,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": "main", "image": "python:3.12", "command": ["sleep", "300"]}
                ],
            },
        },
    )
    wait_for(
        lambda: (
            json.loads(kubectl("get", "pod", name, "-n", NS, "-o", "json"))
            .get("status", {})
            .get("phase")
            == "Running"
        ),
        60,
        f"pod {name} running",
    )
    listed = kubectl("exec", name, "-n", NS, "--", str(KUBECTL), "get", "pods", "-o", "name")
    assert f"pod/{name}" in listed.split(), listed
    whoami = kubectl("exec", name, "-n", NS, "--", str(KUBECTL), "auth", "whoami", "-o", "json")
    user = json.loads(whoami)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{NS}:default"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == [name]
    kubectl("delete", "pod", name, "-n", NS, "--wait=true", "--timeout=60s", timeout=70)
