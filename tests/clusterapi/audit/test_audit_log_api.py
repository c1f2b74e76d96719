"""The audit log and impersonation, against a live Berth with real kubectl.

The module runs one sequence of requests (``sequence``): the bootstrap admin creates,
patches, replaces and deletes a ConfigMap; users are refused reads and writes; a bad token
is refused; a user impersonates another (allowed for one name and one group only, refused for
the rest). Then the log, read as cluster-admin at ``/audit/v1/events``, must hold every
mutating and every denied request of the sequence — who, as whom, which verb on which object,
the response code, and for the patch and the update the diff — newest first, and nothing for
the successful reads. A user without ``nonResourceURLs: ["*"]`` gets 403 on the log.
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.live import Kubectl, LiveServer

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NS = "audit-ns"
USERS = {"bob": "", "sam": "", "imp": "", "nobody": ""}
TOKENS = {name: secrets.token_hex(16) for name in USERS}
RBAC = "rbac.authorization.k8s.io"

POLICY: list[Obj] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
    {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "sam-edit", "namespace": NS},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "sam"}],
    },
    {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "impersonate-sam"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["users"],
                "resourceNames": ["sam"],
                "verbs": ["impersonate"],
            }
        ],
    },
    {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "imp-impersonates-sam"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "impersonate-sam"},
        "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "imp"}],
    },
]
GROUP_GRANT: list[Obj] = [
    {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "impersonate-devs"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["groups"],
                "resourceNames": ["devs"],
                "verbs": ["impersonate"],
            }
        ],
    },
    {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "imp-impersonates-devs"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "impersonate-devs"},
        "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "imp"}],
    },
]


@pytest.fixture(scope="module")
def live_server_berth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    token_file = tmp_path_factory.mktemp("tokens") / "tokens.csv"
    token_file.write_text("".join(f"{TOKENS[n]},{n},uid-{n}\n" for n in USERS))
    server = LiveServer(
        tmp_path_factory.mktemp("berth"), env={"BERTH_TOKEN_FILE": str(token_file)}
    ).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Sequence:
    """What the sequence did, and the audit log afterwards."""

    server: LiveServer
    admin: Kubectl
    users: dict[str, Kubectl]
    outputs: dict[str, tuple[int, str, str]]
    events: list[Obj]

    def output(self, step: str) -> tuple[int, str, str]:
        return self.outputs[step]


def _run(kubectl: Kubectl, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = kubectl.run(*args, input=input, check=False)
    return result.returncode, result.stdout.strip(), result.stderr.strip()


def _configmap(value: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": NS},
            "data": {"k": value},
        }
    )


def _read_log(server: LiveServer, token: str, query: str = "") -> httpx.Response:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with httpx.Client(verify=context, timeout=30) as client:
        return client.get(
            f"{server.url}/audit/v1/events{query}",
            headers={"Authorization": f"Bearer {token}"},
        )


@pytest.fixture(scope="module")
def sequence(live_server_berth: LiveServer, kubectl: Kubectl) -> Sequence:
    server = live_server_berth
    admin = kubectl
    users = {
        name: Kubectl(server.token_kubeconfig(name, token), kubectl.cache_dir)
        for name, token in TOKENS.items()
    }
    admin("apply", "-f", "-", input=yaml.safe_dump_all(POLICY))
    steps: dict[str, tuple[int, str, str]] = {}
    # The admin's writes.
    steps["create"] = _run(admin, "create", "-f", "-", input=_configmap("v1"))
    steps["read"] = _run(admin, "get", "configmap", "cm", "-n", NS, "-o", "json")
    steps["patch"] = _run(
        admin, "patch", "configmap", "cm", "-n", NS, "--type=merge", "-p", '{"data":{"k":"v2"}}'
    )
    steps["replace"] = _run(admin, "replace", "-f", "-", input=_configmap("v3"))
    steps["delete"] = _run(admin, "delete", "configmap", "cm", "-n", NS)
    # Refusals.
    steps["bob list secrets"] = _run(users["bob"], "get", "secrets", "-n", NS)
    steps["bob create"] = _run(
        users["bob"], "create", "configmap", "bobs", "--from-literal=a=b", "-n", NS
    )
    with httpx.Client(
        verify=ssl.create_default_context(cafile=str(server.ca_file)), timeout=30
    ) as client:
        bad = client.get(
            f"{server.url}/api/v1/namespaces/{NS}/pods",
            headers={"Authorization": "Bearer " + secrets.token_hex(16)},
        )
    steps["bad token"] = (bad.status_code, bad.text, "")
    # Impersonation: allowed for sam only, with no groups of imp's choosing.
    imp = users["imp"]
    steps["imp as sam whoami"] = _run(imp, "auth", "whoami", "--as", "sam", "-o", "json")
    steps["imp as sam create"] = _run(
        imp, "create", "configmap", "by-sam", "--from-literal=a=b", "-n", NS, "--as", "sam"
    )
    # (kubectl auth whoami hides a 403 behind its own words: a list shows the Status.)
    as_ = ("get", "configmaps", "-n", NS, "--as")
    steps["imp as bob"] = _run(imp, *as_, "bob")
    steps["imp as sam with group"] = _run(imp, *as_, "sam", "--as-group", "devs")
    steps["imp as sam with uid"] = _run(imp, *as_, "sam", "--as-uid", "42")
    steps["imp as service account"] = _run(imp, *as_, f"system:serviceaccount:{NS}:default")
    steps["nobody as sam"] = _run(users["nobody"], *as_, "sam")
    admin("apply", "-f", "-", input=yaml.safe_dump_all(GROUP_GRANT))
    steps["imp as sam with group, granted"] = _run(
        imp, "auth", "whoami", "--as", "sam", "--as-group", "devs", "-o", "json"
    )
    # The log itself is for cluster admins only.
    denied = _read_log(server, TOKENS["bob"])
    steps["bob reads the log"] = (denied.status_code, denied.text, "")
    events = json.loads(admin("get", "--raw", "/audit/v1/events?limit=5000"))["items"]
    return Sequence(server, admin, users, steps, events)


def _find(events: list[Obj], **want: Any) -> list[Obj]:
    """Events matching ``user``, ``verb``, ``resource``, ``namespace``, ``name``, ``code``,
    ``impersonator`` (those given)."""
    found = []
    for event in events:
        ref = event["objectRef"]
        actual = {
            "user": event["user"]["username"],
            "verb": event["verb"],
            "resource": ref["resource"],
            "subresource": ref["subresource"],
            "namespace": ref["namespace"],
            "name": ref["name"],
            "code": event["responseStatus"]["code"],
            "impersonator": event["impersonatedBy"],
            "uri": event["requestURI"],
        }
        if all(actual[key] == value for key, value in want.items()):
            found.append(event)
    return found


def test_the_sequence_did_what_it_should(sequence: Sequence) -> None:
    for step in ("create", "read", "patch", "replace", "delete"):
        assert sequence.output(step)[0] == 0, (step, sequence.output(step))
    assert sequence.output("bad token")[0] == 401
    assert sequence.output("imp as sam create")[0] == 0


def test_every_mutating_request_is_recorded(sequence: Sequence) -> None:
    events = sequence.events
    expected = [
        {"verb": "create", "name": "cm", "code": 201},
        {"verb": "patch", "name": "cm", "code": 200},
        {"verb": "update", "name": "cm", "code": 200},
        {"verb": "delete", "name": "cm", "code": 200},
    ]
    for want in expected:
        hits = _find(events, user="admin", resource="configmaps", namespace=NS, **want)
        assert len(hits) == 1, (want, hits)
        assert hits[0]["user"]["groups"] == ["system:masters", "system:authenticated"]
    namespace = _find(events, user="admin", verb="create", resource="namespaces", name=NS)
    assert namespace and namespace[0]["responseStatus"]["code"] == 201
    assert _find(events, user="admin", verb="create", resource="clusterrolebindings", code=201)


def test_update_and_patch_carry_the_diff(sequence: Sequence) -> None:
    patch = _find(sequence.events, user="admin", verb="patch", resource="configmaps", name="cm")
    update = _find(sequence.events, user="admin", verb="update", resource="configmaps", name="cm")
    assert patch[0]["diff"] == [{"op": "replace", "path": "/data/k", "value": "v2"}]
    assert update[0]["diff"] == [{"op": "replace", "path": "/data/k", "value": "v3"}]
    create = _find(sequence.events, user="admin", verb="create", resource="configmaps", name="cm")
    assert create[0]["diff"] is None


def test_every_denied_request_is_recorded(sequence: Sequence) -> None:
    events = sequence.events
    assert _find(events, user="bob", verb="list", resource="secrets", namespace=NS, code=403)
    assert _find(events, user="bob", verb="create", resource="configmaps", namespace=NS, code=403)
    unauthenticated = _find(
        events,
        verb="list",
        resource="pods",
        namespace=NS,
        code=401,
        uri=f"/api/v1/namespaces/{NS}/pods",
    )
    assert unauthenticated
    assert unauthenticated[0]["user"]["username"] == "system:anonymous"
    assert _find(events, user="bob", verb="get", resource="", code=403, uri="/audit/v1/events")
    # Refused impersonation is recorded under the real user's name.
    assert _find(events, user="imp", verb="list", resource="configmaps", namespace=NS, code=403)
    assert _find(events, user="nobody", verb="list", resource="configmaps", code=403)


def test_impersonated_requests_name_the_impersonator(sequence: Sequence) -> None:
    hits = _find(
        sequence.events, user="sam", verb="create", resource="configmaps", name="by-sam", code=201
    )
    assert len(hits) == 1
    assert hits[0]["impersonatedBy"] == "imp"
    assert hits[0]["user"]["groups"] == ["system:authenticated"]


def test_successful_reads_are_not_recorded(sequence: Sequence) -> None:
    reads = [
        event
        for event in sequence.events
        if event["verb"] in ("get", "list", "watch") and event["responseStatus"]["code"] < 400
    ]
    assert reads == []
    # Nor are reviews, which only ask questions.
    assert not _find(sequence.events, resource="selfsubjectreviews", code=201)


def test_events_are_newest_first_and_limited(sequence: Sequence) -> None:
    stamps = [event["timestamp"] for event in sequence.events]
    assert stamps == sorted(stamps, reverse=True)
    newest = json.loads(sequence.admin("get", "--raw", "/audit/v1/events?limit=3"))["items"]
    assert len(newest) == 3
    # Events may have been added since (node agents renew leases): compare by position.
    assert newest[0]["timestamp"] >= sequence.events[0]["timestamp"]
    assert [e["timestamp"] for e in newest] == sorted(
        (e["timestamp"] for e in newest), reverse=True
    )


def test_a_non_admin_gets_403_on_the_audit_log(sequence: Sequence) -> None:
    code, body, _ = sequence.output("bob reads the log")
    assert code == 403
    assert json.loads(body)["message"] == (
        'forbidden: User "bob" cannot get path "/audit/v1/events"'
    )
    # sam, who may edit a namespace, is no cluster admin either.
    code, _, err = _run(sequence.users["sam"], "get", "--raw", "/audit/v1/events")
    assert code != 0
    assert err == (
        'Error from server (Forbidden): forbidden: User "sam" cannot get path "/audit/v1/events"'
    )


def test_impersonation_needs_the_impersonate_verb(sequence: Sequence) -> None:
    code, out, _ = sequence.output("imp as sam whoami")
    assert code == 0
    info = json.loads(out)["status"]["userInfo"]
    assert (info["username"], info["groups"]) == ("sam", ["system:authenticated"])
    refusals = {
        "imp as bob": 'users "bob" is forbidden: User "imp" cannot impersonate resource "users" '
        'in API group "" at the cluster scope',
        "imp as sam with group": 'groups "devs" is forbidden: User "imp" cannot impersonate '
        'resource "groups" in API group "" at the cluster scope',
        "imp as sam with uid": 'uids.authentication.k8s.io "42" is forbidden: User "imp" cannot '
        'impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope',
        "imp as service account": 'serviceaccounts "default" is forbidden: User "imp" cannot '
        f'impersonate resource "serviceaccounts" in API group "" in the namespace "{NS}"',
        "nobody as sam": 'users "sam" is forbidden: User "nobody" cannot impersonate resource '
        '"users" in API group "" at the cluster scope',
    }
    for step, message in refusals.items():
        code, _, err = sequence.output(step)
        assert code != 0, step
        assert err == f"Error from server (Forbidden): {message}", step
    code, out, _ = sequence.output("imp as sam with group, granted")
    assert code == 0
    info = json.loads(out)["status"]["userInfo"]
    assert (info["username"], info["groups"]) == ("sam", ["devs", "system:authenticated"])
