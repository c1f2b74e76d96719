"""RBAC with the real kubectl (1.37) and per-user kubeconfigs against a live Berth.

One server serves the module. At the start the bootstrap admin applies a small world of
namespaces, roles and bindings (``WORLD``); every identity then gets a kubeconfig of its own:
static-token users from a Kubernetes-style token file (``BERTH_TOKEN_FILE``), the node
identities from ``manage.py kubeconfig``, the service account from ``kubectl create token``.

* ``CAN_I``: ``kubectl auth can-i`` cases, each with the answer Kubernetes' documented RBAC
  rules give — the aggregated ``admin``/``edit``/``view`` roles bound in one namespace through
  a RoleBinding, cluster-wide roles through a ClusterRoleBinding, resourceNames,
  subresources, ``*`` in verbs/resources/apiGroups, nonResourceURLs, group subjects and
  service-account subjects (by name and by their ``system:serviceaccounts:<ns>`` group).
* ``kubectl auth can-i --list`` and ``kubectl auth whoami``.
* Denied requests: 403 with upstream's exact message, through kubectl and over plain HTTP.
* Escalation prevention: roles with more than their writer holds, bindings to cluster-admin,
  a changed roleRef; then the same requests passing with ``escalate`` and ``bind``.
* The Node authorizer and NodeRestriction: a node identity changes only its own Node, Lease
  and pod statuses, and reads only the secrets its pods use.
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.live import Kubectl, LiveServer

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NS_A = "team-a"
NS_B = "team-b"
NODE_NS = "node-test"
RBAC = "rbac.authorization.k8s.io/v1"

# Static-token users: name -> groups (besides system:authenticated).
STATIC_USERS: dict[str, tuple[str, ...]] = {
    "alice": (),  # admin in team-a (RoleBinding -> ClusterRole admin)
    "ed": (),  # edit in team-a
    "bob": (),  # view in team-a
    "dave": (),  # view everywhere (ClusterRoleBinding)
    "erin": (),  # a Role with resourceNames, plus pods/log
    "pete": (),  # a Role on */log (a subresource wildcard) and pods/* (no wildcard)
    "wanda": (),  # wildcards: apps/* everywhere, */* get in team-b
    "mona": ("metrics-readers",),  # nonResourceURLs through a group subject
    "frank": ("ops",),  # edit in team-b through the group "ops"
    "rita": (),  # view + role management in team-a, for the escalation tests
    "sam": (),  # bound to nothing at all
    "imp": (),  # impersonates sam only
}
STATIC_TOKENS = {name: secrets.token_hex(16) for name in STATIC_USERS}


def _binding(
    kind: str, name: str, role_kind: str, role: str, subjects: list[Obj], namespace: str = ""
) -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    }


def _user(name: str) -> Obj:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def _group(name: str) -> Obj:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def _role(kind: str, name: str, rules: list[Obj], namespace: str = "") -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": RBAC, "kind": kind, "metadata": meta, "rules": rules}


WORLD: list[Obj] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS_A}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS_B}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NODE_NS}},
    {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "robot", "namespace": NS_A},
    },
    # The aggregated roles, bound in one namespace.
    _binding("RoleBinding", "alice-admin", "ClusterRole", "admin", [_user("alice")], NS_A),
    _binding("RoleBinding", "ed-edit", "ClusterRole", "edit", [_user("ed")], NS_A),
    _binding("RoleBinding", "bob-view", "ClusterRole", "view", [_user("bob")], NS_A),
    # A cluster-wide role.
    _binding("ClusterRoleBinding", "dave-view", "ClusterRole", "view", [_user("dave")]),
    # resourceNames and a lone subresource.
    _role(
        "Role",
        "app-config-editor",
        [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["app-config"],
                "verbs": ["get", "update"],
            },
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ],
        NS_A,
    ),
    _binding("RoleBinding", "erin-app-config", "Role", "app-config-editor", [_user("erin")], NS_A),
    # Every subresource of pods, but not pods themselves.
    _role(
        "Role",
        "pod-subresources",
        # "*/log" is RBAC's subresource wildcard; "pods/*" is a literal name matching nothing.
        [{"apiGroups": [""], "resources": ["*/log", "pods/*"], "verbs": ["get", "create"]}],
        NS_A,
    ),
    _binding("RoleBinding", "pete-pod-subs", "Role", "pod-subresources", [_user("pete")], NS_A),
    # Wildcards: everything in apps, cluster-wide; get on anything, in team-b only.
    _role(
        "ClusterRole",
        "apps-everything",
        [{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}],
    ),
    _role(
        "ClusterRole",
        "get-anything",
        [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}],
    ),
    _binding(
        "ClusterRoleBinding", "wanda-apps", "ClusterRole", "apps-everything", [_user("wanda")]
    ),
    _binding("RoleBinding", "wanda-get", "ClusterRole", "get-anything", [_user("wanda")], NS_B),
    # nonResourceURLs, to a group.
    _role(
        "ClusterRole",
        "metrics-reader",
        [{"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}],
    ),
    _binding(
        "ClusterRoleBinding",
        "metrics-readers",
        "ClusterRole",
        "metrics-reader",
        [_group("metrics-readers")],
    ),
    # A group subject in a namespace.
    _binding("RoleBinding", "ops-edit", "ClusterRole", "edit", [_group("ops")], NS_B),
    # Service-account subjects: by name, and through the namespace's service-account group.
    _binding(
        "RoleBinding",
        "robot-view",
        "ClusterRole",
        "view",
        [{"kind": "ServiceAccount", "name": "robot", "namespace": NS_A}],
        NS_A,
    ),
    _role(
        "Role",
        "configmap-lister",
        [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        NS_B,
    ),
    _binding(
        "RoleBinding",
        "team-a-accounts-list-configmaps",
        "Role",
        "configmap-lister",
        [_group(f"system:serviceaccounts:{NS_A}")],
        NS_B,
    ),
    # rita: reads like view, manages roles and bindings, holds no secrets.
    _binding("RoleBinding", "rita-view", "ClusterRole", "view", [_user("rita")], NS_A),
    _role(
        "Role",
        "role-manager",
        [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["roles", "rolebindings"],
                "verbs": ["get", "list", "create", "update", "patch", "delete"],
            }
        ],
        NS_A,
    ),
    _binding("RoleBinding", "rita-role-manager", "Role", "role-manager", [_user("rita")], NS_A),
    # imp may impersonate sam, and nobody else.
    _role(
        "ClusterRole",
        "impersonate-sam",
        [
            {
                "apiGroups": [""],
                "resources": ["users"],
                "resourceNames": ["sam"],
                "verbs": ["impersonate"],
            }
        ],
    ),
    _binding("ClusterRoleBinding", "imp-sam", "ClusterRole", "impersonate-sam", [_user("imp")]),
]


def _manifest(objects: list[Obj]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


@dataclass
class World:
    """The module's server and a kubectl per identity."""

    server: LiveServer
    admin: Kubectl
    users: dict[str, Kubectl]

    def __getitem__(self, user: str) -> Kubectl:
        return self.admin if user == "admin" else self.users[user]


@pytest.fixture(scope="module")
def live_server_berth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """This module's server, with the static users' token file."""
    token_file = tmp_path_factory.mktemp("tokens") / "tokens.csv"
    lines = [
        f'{STATIC_TOKENS[name]},{name},uid-{name},"{",".join(groups)}"'
        for name, groups in STATIC_USERS.items()
    ]
    token_file.write_text("\n".join(lines) + "\n")
    server = LiveServer(
        tmp_path_factory.mktemp("berth"), env={"BERTH_TOKEN_FILE": str(token_file)}
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(
    live_server_berth: LiveServer, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> World:
    server = live_server_berth
    kubectl("apply", "-f", "-", input=_manifest(WORLD))
    cache = kubectl.cache_dir
    users = {
        name: Kubectl(server.token_kubeconfig(name, token), cache)
        for name, token in STATIC_TOKENS.items()
    }
    robot_token = kubectl("create", "token", "robot", "-n", NS_A).strip()
    users["robot"] = Kubectl(server.token_kubeconfig("robot", robot_token), cache)
    # Node identities, the way an operator makes them (two manage.py runs, side by side).
    with ThreadPoolExecutor(2) as pool:
        paths = list(
            pool.map(
                lambda node: server.kubeconfig(f"system:node:{node}", "system:nodes"),
                ("n1", "n2"),
            )
        )
    users["n1"] = Kubectl(paths[0], cache)
    users["n2"] = Kubectl(paths[1], cache)
    return World(server, kubectl, users)


# --- kubectl auth can-i ---------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``kubectl auth can-i ARGS`` as USER, and the answer Kubernetes gives."""

    user: str
    args: str
    allowed: bool
    why: str

    @property
    def id(self) -> str:
        return f"{self.user}: {self.args} -> {'yes' if self.allowed else 'no'}"


YES, NO = True, False
CAN_I: list[Case] = [
    # admin through a RoleBinding in team-a: roles and bindings, secrets; not quota, not
    # cluster-scoped objects, not other namespaces.
    Case("alice", "create roles -n team-a", YES, "admin manages Roles in its namespace"),
    Case("alice", "create rolebindings -n team-a", YES, "admin manages RoleBindings"),
    Case("alice", "get secrets -n team-a", YES, "admin reads secrets"),
    Case("alice", "create resourcequotas -n team-a", NO, "admin cannot write resourcequotas"),
    Case("alice", "get resourcequotas -n team-a", YES, "admin reads resourcequotas (view)"),
    Case(
        "alice",
        "create localsubjectaccessreviews.authorization.k8s.io -n team-a",
        YES,
        "admin asks who may do what in its namespace",
    ),
    Case("alice", "delete pods -n team-b", NO, "a RoleBinding applies in its namespace only"),
    Case("alice", "list nodes", NO, "a RoleBinding never grants cluster-scoped objects"),
    # edit: workloads and secrets, no RBAC, no quota.
    Case("ed", "create pods -n team-a", YES, "edit writes pods"),
    Case("ed", "create roles -n team-a", NO, "edit cannot touch roles"),
    Case("ed", "create rolebindings -n team-a", NO, "edit cannot touch rolebindings"),
    Case("ed", "get secrets -n team-a", YES, "edit reads secrets"),
    Case("ed", "create pods --subresource=exec -n team-a", YES, "edit may exec"),
    Case("ed", "patch deployments.apps --subresource=scale -n team-a", YES, "edit scales"),
    Case("ed", "impersonate serviceaccounts -n team-a", YES, "edit acts as its accounts"),
    Case("ed", "update resourcequotas -n team-a", NO, "edit cannot write resourcequotas"),
    Case("ed", "create deployments.apps -n team-b", NO, "only in the binding's namespace"),
    # view: reads, but no secrets, no exec, no RBAC.
    Case("bob", "get pods -n team-a", YES, "view reads pods"),
    Case("bob", "list secrets -n team-a", NO, "view cannot read secrets"),
    Case("bob", "get pods --subresource=log -n team-a", YES, "view reads pods/log"),
    Case("bob", "create pods --subresource=exec -n team-a", NO, "view cannot exec"),
    Case("bob", "get deployments.apps --subresource=scale -n team-a", YES, "view reads scale"),
    Case("bob", "update deployments.apps --subresource=scale -n team-a", NO, "view cannot scale"),
    Case("bob", "watch deployments.apps -n team-a", YES, "view watches"),
    Case("bob", "list roles -n team-a", NO, "view cannot read roles"),
    Case("bob", "create pods -n team-a", NO, "view cannot write"),
    Case("bob", "get pods -n team-b", NO, "only in the binding's namespace"),
    Case("bob", "list pods -A", NO, "a RoleBinding does not reach all namespaces"),
    # view through a ClusterRoleBinding: every namespace, still no secrets.
    Case("dave", "list pods -A", YES, "a ClusterRoleBinding applies in all namespaces"),
    Case("dave", "get pods -n team-b", YES, "a ClusterRoleBinding applies in each namespace"),
    Case("dave", "get secrets -n team-b", NO, "view cannot read secrets, anywhere"),
    Case("dave", "list nodes", NO, "view has no cluster-scoped objects"),
    Case("dave", "delete pods -n team-a", NO, "view cannot write"),
    # resourceNames.
    Case("erin", "get configmaps/app-config -n team-a", YES, "the named object"),
    Case("erin", "update configmaps/app-config -n team-a", YES, "the named object"),
    Case("erin", "get configmaps/other -n team-a", NO, "another name"),
    Case("erin", "list configmaps -n team-a", NO, "resourceNames never allow a list"),
    Case("erin", "delete configmaps/app-config -n team-a", NO, "a verb not granted"),
    Case("erin", "get configmaps/app-config -n team-b", NO, "another namespace"),
    Case("erin", "get pods --subresource=log -n team-a", YES, "a lone subresource"),
    Case("erin", "get pods -n team-a", NO, "pods/log does not grant pods"),
    # Subresource wildcards: "*/log" matches any resource's log; "pods/*" is not a wildcard.
    Case("pete", "get pods --subresource=log -n team-a", YES, "*/log covers pods/log"),
    Case("pete", "create pods --subresource=exec -n team-a", NO, "pods/* matches no subresource"),
    Case("pete", "get pods -n team-a", NO, "*/log does not cover pods"),
    Case("pete", "get pods --subresource=log -n team-b", NO, "another namespace"),
    # Wildcards.
    Case("wanda", "delete deployments.apps -n team-a", YES, "apps/*, verb *"),
    Case(
        "wanda",
        "update statefulsets.apps --subresource=scale -n team-b",
        YES,
        "resources * covers subresources",
    ),
    Case("wanda", "deletecollection replicasets.apps -A", YES, "cluster-wide"),
    Case("wanda", "create pods -n team-a", NO, "apps/* is not the core group"),
    Case("wanda", "get secrets -n team-b", YES, "apiGroups * resources * verbs get"),
    Case("wanda", "get pods --subresource=log -n team-b", YES, "resources * covers pods/log"),
    Case("wanda", "list secrets -n team-b", NO, "get is not list"),
    Case("wanda", "get secrets -n team-a", NO, "the RoleBinding is in team-b only"),
    Case("wanda", "get /metrics", NO, "resource rules never cover URLs"),
    # nonResourceURLs through a group subject, and what every authenticated user has.
    Case("mona", "get /metrics", YES, "nonResourceURLs /metrics"),
    Case("mona", "get /logs/kube-apiserver.log", YES, "nonResourceURLs /logs/* prefix"),
    Case("mona", "post /metrics", NO, "only get"),
    Case("mona", "get /debug/pprof", NO, "a path not listed"),
    Case("mona", "get pods", NO, "URL rules never cover resources"),
    Case("bob", "get /healthz", YES, "system:public-info-viewer"),
    Case("bob", "get /version", YES, "system:public-info-viewer"),
    Case("bob", "get /apis/apps/v1", YES, "system:discovery /apis/*"),
    Case("bob", "get /metrics", NO, "system:monitoring is not bound to bob"),
    # A group subject in a namespace.
    Case("frank", "create deployments.apps -n team-b", YES, "edit through the group ops"),
    Case("frank", "get secrets -n team-b", YES, "edit through the group ops"),
    Case("frank", "create roles -n team-b", NO, "edit cannot touch roles"),
    Case("frank", "create deployments.apps -n team-a", NO, "the group's binding is in team-b"),
    Case("sam", "create deployments.apps -n team-b", NO, "not in the group ops"),
    # Service accounts: by name, and by their namespace's group.
    Case("robot", "list pods -n team-a", YES, "ServiceAccount subject bound to view"),
    Case("robot", "get secrets -n team-a", NO, "view cannot read secrets"),
    Case("robot", "list configmaps -n team-b", YES, "group system:serviceaccounts:team-a"),
    Case("robot", "list pods -n team-b", NO, "nothing else in team-b"),
    # Bound to nothing: only what every authenticated user has.
    Case("sam", "get pods", NO, "deny by default"),
    Case(
        "sam",
        "create selfsubjectaccessreviews.authorization.k8s.io",
        YES,
        "system:basic-user",
    ),
    Case("sam", "get /healthz", YES, "system:public-info-viewer"),
    Case("sam", "impersonate users/bob", NO, "impersonation is a verb like any other"),
    Case("imp", "impersonate users/sam", YES, "resourceNames on users"),
    Case("imp", "impersonate users/bob", NO, "another name"),
    # system:masters bypasses everything.
    Case("admin", "* * -A", YES, "system:masters"),
    Case("admin", "get /anything/at/all", YES, "system:masters"),
]


@pytest.fixture(scope="module")
def can_i_answers(world: World) -> dict[Case, tuple[int, str, str]]:
    """Every case's (exit code, stdout, stderr), asked concurrently."""

    def ask(case: Case) -> tuple[int, str, str]:
        result = world[case.user].run("auth", "can-i", *case.args.split(), check=False)
        return result.returncode, result.stdout.strip(), result.stderr.strip()

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(CAN_I, pool.map(ask, CAN_I), strict=True))


def test_the_can_i_table_is_large_enough() -> None:
    assert len(CAN_I) >= 40
    assert len({case.id for case in CAN_I}) == len(CAN_I)
    assert sum(case.allowed for case in CAN_I) >= 15
    assert sum(not case.allowed for case in CAN_I) >= 15


@pytest.mark.parametrize("case", CAN_I, ids=lambda case: case.id)
def test_kubectl_auth_can_i_answers_as_kubernetes_rbac(
    case: Case, can_i_answers: dict[Case, tuple[int, str, str]]
) -> None:
    code, out, err = can_i_answers[case]
    expected = "yes" if case.allowed else "no"
    assert (out, code) == (expected, 0 if case.allowed else 1), (
        f"{case.why}: kubectl printed {out!r} (exit {code}); stderr: {err}"
    )


def _list_rows(output: str) -> list[str]:
    """The rows of ``kubectl auth can-i --list``, with runs of spaces collapsed."""
    return [" ".join(line.split()) for line in output.splitlines()[1:] if line.strip()]


def test_can_i_list_shows_resource_names_and_subresources(world: World) -> None:
    rows = _list_rows(world["erin"]("auth", "can-i", "--list", "-n", NS_A))
    assert "configmaps [] [app-config] [get update]" in rows
    assert "pods/log [] [] [get]" in rows
    assert "selfsubjectaccessreviews.authorization.k8s.io [] [] [create]" in rows
    assert not any(row.startswith("secrets") for row in rows)


def test_can_i_list_shows_the_namespace_s_view_rules_and_no_secrets(world: World) -> None:
    rows = _list_rows(world["bob"]("auth", "can-i", "--list", "-n", NS_A))
    assert "pods [] [] [get list watch]" in rows
    assert "deployments.apps/scale [] [] [get list watch]" in rows
    assert not any(row.startswith("secrets") for row in rows)
    # In another namespace bob has only what every authenticated user has.
    elsewhere = _list_rows(world["bob"]("auth", "can-i", "--list", "-n", NS_B))
    assert not any(row.startswith("pods") for row in elsewhere)
    assert "[/healthz] [] [get]" in elsewhere


def test_can_i_list_shows_non_resource_urls(world: World) -> None:
    rows = _list_rows(world["mona"]("auth", "can-i", "--list"))
    assert "[/metrics] [] [get]" in rows
    assert "[/logs/*] [] [get]" in rows


def test_whoami_shows_static_token_user_with_groups(world: World) -> None:
    review = json.loads(world["mona"]("auth", "whoami", "-o", "json"))
    assert review["kind"] == "SelfSubjectReview"
    info = review["status"]["userInfo"]
    assert info["username"] == "mona"
    assert info["uid"] == "uid-mona"
    assert info["groups"] == ["metrics-readers", "system:authenticated"]
    table = world["bob"]("auth", "whoami")
    assert [" ".join(line.split()) for line in table.splitlines()] == [
        "ATTRIBUTE VALUE",
        "Username bob",
        "UID uid-bob",
        "Groups [system:authenticated]",
    ]


def test_whoami_shows_service_account_identity(world: World) -> None:
    info = json.loads(world["robot"]("auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{NS_A}:robot"
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{NS_A}",
        "system:authenticated",
    ]
    assert info["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")


def test_whoami_shows_node_identity(world: World) -> None:
    info = json.loads(world["n1"]("auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert info["username"] == "system:node:n1"
    assert info["groups"] == ["system:nodes", "system:authenticated"]


# --- denied requests: upstream's 403 ------------------------------------------------------


def _pod(name: str, namespace: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec},
    }


def _tls(server: LiveServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.ca_file))


def _forbidden(kubectl: Kubectl, *args: str, input: str | None = None) -> str:
    result = kubectl.run(*args, input=input, check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr.strip()


def test_denied_create_gets_kubernetes_forbidden_message(world: World) -> None:
    err = _forbidden(world["bob"], "create", "-f", "-", input=json.dumps(_pod("web", NS_A)))
    assert err == (
        'Error from server (Forbidden): error when creating "STDIN": pods is forbidden: '
        'User "bob" cannot create resource "pods" in API group "" in the namespace "team-a"'
    )


def test_denied_requests_name_object_group_and_scope(world: World) -> None:
    bob = world["bob"]
    assert _forbidden(bob, "delete", "pod", "web", "-n", NS_A) == (
        'Error from server (Forbidden): pods "web" is forbidden: User "bob" cannot delete '
        'resource "pods" in API group "" in the namespace "team-a"'
    )
    assert _forbidden(bob, "get", "nodes") == (
        'Error from server (Forbidden): nodes is forbidden: User "bob" cannot list resource '
        '"nodes" in API group "" at the cluster scope'
    )
    assert _forbidden(bob, "create", "deployment", "web", "--image=nginx", "-n", NS_A) == (
        'error: failed to create deployment: deployments.apps is forbidden: User "bob" '
        'cannot create resource "deployments" in API group "apps" in the namespace "team-a"'
    )
    assert _forbidden(bob, "get", "secrets", "-n", NS_A) == (
        'Error from server (Forbidden): secrets is forbidden: User "bob" cannot list resource '
        '"secrets" in API group "" in the namespace "team-a"'
    )
    assert _forbidden(bob, "get", "--raw", "/audit/v1/events") == (
        'Error from server (Forbidden): forbidden: User "bob" cannot get path "/audit/v1/events"'
    )


def test_non_resource_paths_are_authorized_before_they_are_looked_up(world: World) -> None:
    """A path is refused by RBAC (403) before anyone learns whether it is served (404)."""
    assert _forbidden(world["bob"], "get", "--raw", "/metrics") == (
        'Error from server (Forbidden): forbidden: User "bob" cannot get path "/metrics"'
    )
    # mona may get /metrics; Berth serves nothing there, so she gets upstream's 404.
    assert _forbidden(world["mona"], "get", "--raw", "/metrics") == (
        "Error from server (NotFound): the server could not find the requested resource"
    )
    assert _forbidden(world["mona"], "get", "--raw", "/debug/pprof") == (
        'Error from server (Forbidden): forbidden: User "mona" cannot get path "/debug/pprof"'
    )


def test_denied_request_over_http_is_a_forbidden_status(world: World) -> None:
    with httpx.Client(verify=_tls(world.server), timeout=30) as client:
        response = client.post(
            f"{world.server.url}/api/v1/namespaces/{NS_A}/pods",
            json=_pod("web", NS_A),
            headers={"Authorization": f"Bearer {STATIC_TOKENS['bob']}"},
        )
    assert response.status_code == 403
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods is forbidden: User "bob" cannot create resource "pods" in API group "" '
        'in the namespace "team-a"',
        "reason": "Forbidden",
        "details": {"kind": "pods"},
        "code": 403,
    }


def test_allowed_requests_really_pass(world: World) -> None:
    """The can-i answers hold for real requests, not only for reviews."""
    world["ed"]("create", "configmap", "app-config", "--from-literal=k=v", "-n", NS_A)
    world["erin"]("get", "configmap", "app-config", "-n", NS_A)
    assert "configmaps is forbidden" in _forbidden(world["erin"], "get", "configmaps", "-n", NS_A)
    world["frank"]("create", "deployment", "web", "--image=nginx", "-n", NS_B)
    world["wanda"]("scale", "deployment", "web", "--replicas=2", "-n", NS_B)
    world["dave"]("get", "deployment", "web", "-n", NS_B)
    world["robot"]("get", "configmaps", "-n", NS_B)
    world["mona"]("get", "--raw", "/healthz")


# --- escalation prevention ----------------------------------------------------------------


def _role_manifest(name: str, resources: list[str], verbs: list[str]) -> str:
    return json.dumps(
        _role("Role", name, [{"apiGroups": [""], "resources": resources, "verbs": verbs}], NS_A)
    )


RITA_GROUPS = '(groups=["system:authenticated"])'


def test_role_granting_what_the_writer_lacks_is_forbidden(world: World) -> None:
    rita = world["rita"]
    rita("create", "-f", "-", input=_role_manifest("pod-reader", ["pods"], ["get", "list"]))
    err = _forbidden(
        rita, "create", "-f", "-", input=_role_manifest("secret-reader", ["secrets"], ["get"])
    )
    assert err == (
        'Error from server (Forbidden): error when creating "STDIN": '
        'roles.rbac.authorization.k8s.io "secret-reader" is forbidden: user "rita" '
        f"{RITA_GROUPS} is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
    )
    # Widening a role she may edit is the same escalation.
    err = _forbidden(
        rita,
        "replace",
        "-f",
        "-",
        input=_role_manifest("pod-reader", ["pods", "secrets"], ["get", "list"]),
    )
    assert "is attempting to grant RBAC permissions not currently held:" in err
    assert '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}' in err
    # Nothing was half-written.
    missing = world.admin.run("get", "role", "secret-reader", "-n", NS_A, check=False)
    assert 'roles.rbac.authorization.k8s.io "secret-reader" not found' in missing.stderr
    role = json.loads(world.admin("get", "role", "pod-reader", "-n", NS_A, "-o", "json"))
    assert role["rules"][0]["resources"] == ["pods"]


def test_binding_to_cluster_admin_is_forbidden(world: World) -> None:
    binding = _binding(
        "RoleBinding", "rita-root", "ClusterRole", "cluster-admin", [_user("rita")], NS_A
    )
    err = _forbidden(world["rita"], "create", "-f", "-", input=json.dumps(binding))
    assert err == (
        'Error from server (Forbidden): error when creating "STDIN": '
        'rolebindings.rbac.authorization.k8s.io "rita-root" is forbidden: user "rita" '
        f"{RITA_GROUPS} is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n'
        '{NonResourceURLs:["*"], Verbs:["*"]}'
    )
    cluster_binding = _binding(
        "ClusterRoleBinding", "rita-root", "ClusterRole", "cluster-admin", [_user("rita")]
    )
    err = _forbidden(world["rita"], "create", "-f", "-", input=json.dumps(cluster_binding))
    assert err == (
        'Error from server (Forbidden): error when creating "STDIN": '
        'clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "rita" cannot create '
        'resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the '
        "cluster scope"
    )


def test_changing_a_binding_s_role_ref_is_invalid(world: World) -> None:
    binding = _binding("RoleBinding", "sam-view", "ClusterRole", "view", [_user("sam")], NS_A)
    world["rita"]("create", "-f", "-", input=json.dumps(binding))  # she holds view
    binding["roleRef"]["name"] = "edit"
    expected = (
        'The RoleBinding "sam-view" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: '
        "cannot change roleRef"
    )
    # Immutable for everyone, cluster admins included: validation, not authorization.
    for user in ("rita", "admin"):
        err = _forbidden(world[user], "replace", "-f", "-", input=json.dumps(binding))
        assert err == expected, user
    current = json.loads(world.admin("get", "rolebinding", "sam-view", "-n", NS_A, "-o", "json"))
    assert current["roleRef"]["name"] == "view"


def test_escalate_and_bind_let_the_same_requests_pass(world: World) -> None:
    rita = world["rita"]
    grants = [
        _role(
            "Role",
            "role-escalator",
            [
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["roles"],
                    "verbs": ["escalate"],
                }
            ],
            NS_A,
        ),
        _role(
            "Role",
            "cluster-admin-binder",
            [
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterroles"],
                    "resourceNames": ["cluster-admin"],
                    "verbs": ["bind"],
                }
            ],
            NS_A,
        ),
        _binding("RoleBinding", "rita-escalate", "Role", "role-escalator", [_user("rita")], NS_A),
        _binding("RoleBinding", "rita-bind", "Role", "cluster-admin-binder", [_user("rita")], NS_A),
    ]
    world.admin("apply", "-f", "-", input=_manifest(grants))
    rita("create", "-f", "-", input=_role_manifest("secret-reader", ["secrets"], ["get"]))
    binding = _binding(
        "RoleBinding", "sam-root", "ClusterRole", "cluster-admin", [_user("sam")], NS_A
    )
    rita("create", "-f", "-", input=json.dumps(binding))
    # bind is narrowed by resourceNames: admin is still out of reach.
    other = _binding("RoleBinding", "sam-admin", "ClusterRole", "admin", [_user("sam")], NS_A)
    err = _forbidden(rita, "create", "-f", "-", input=json.dumps(other))
    assert "is attempting to grant RBAC permissions not currently held" in err
    # Holding escalate is not holding the permission: rita still cannot read secrets.
    assert "secrets is forbidden" in _forbidden(rita, "get", "secrets", "-n", NS_A)


# --- the Node authorizer and NodeRestriction ------------------------------------------------


def _node_objects() -> list[Obj]:
    def secret(name: str) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NODE_NS},
            "stringData": {"k": name},
        }

    def uses(secret_name: str) -> Obj:
        return {"volumes": [{"name": "s", "secret": {"secretName": secret_name}}]}

    return [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}},
        secret("used-on-n1"),
        secret("used-on-n2"),
        secret("unused"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "env-on-n1", "namespace": NODE_NS},
            "data": {"k": "v"},
        },
        _pod("p1", NODE_NS, nodeName="n1", **uses("used-on-n1")),
        _pod("p2", NODE_NS, nodeName="n2", **uses("used-on-n2")),
    ]


@pytest.fixture(scope="module")
def node_world(world: World) -> World:
    pods = _node_objects()
    pods[5]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "env-on-n1"}}]
    world.admin("apply", "-f", "-", input=_manifest(pods))
    return world


def _patch(world: World, node: str, path: str, body: Obj) -> httpx.Response:
    """A merge patch of ``path`` with the node's own credential, as a node agent sends it."""
    config = yaml.safe_load(world[node].kubeconfig.read_text())
    token = config["users"][0]["user"]["token"]
    with httpx.Client(verify=_tls(world.server), timeout=30) as client:
        return client.patch(
            f"{world.server.url}{path}",
            content=json.dumps(body),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/merge-patch+json",
            },
        )


def _lease(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40},
        }
    )


def test_node_updates_its_own_node_and_lease_only(node_world: World) -> None:
    n1, n2 = node_world["n1"], node_world["n2"]
    n1(
        "create",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
    )
    n1("annotate", "node", "n1", "berth.test/seen=yes")
    # Status as a node agent reports it: a PATCH of the status subresource, no GET before it
    # (nodes may not read nodes/status, as upstream's node rules).
    node_status = {"status": {"nodeInfo": {"kubeletVersion": "v1.37.1"}}}
    assert _patch(node_world, "n1", "/api/v1/nodes/n1/status", node_status).status_code == 200
    refused = _patch(node_world, "n1", "/api/v1/nodes/n2/status", node_status)
    assert refused.status_code == 403
    assert refused.json()["message"].endswith('node "n1" is not allowed to modify node "n2"')
    # Another node's object: not even readable, and not writable.
    assert _forbidden(n1, "annotate", "node", "n2", "berth.test/seen=yes") == (
        'Error from server (Forbidden): nodes "n2" is forbidden: User "system:node:n1" cannot '
        'get resource "nodes" in API group "" at the cluster scope: '
        "node 'n1' cannot read 'n2', only its own Node object"
    )
    annotate = {"metadata": {"annotations": {"berth.test/seen": "yes"}}}
    refused = _patch(node_world, "n1", "/api/v1/nodes/n2", annotate)
    assert refused.status_code == 403
    assert refused.json()["message"].endswith('node "n1" is not allowed to modify node "n2"')
    n2("create", "-f", "-", input=_lease("n2"))
    n1("create", "-f", "-", input=_lease("n1"))
    n1("annotate", "lease", "n1", "-n", "kube-node-lease", "berth.test/renewed=yes")
    err = _forbidden(n1, "annotate", "lease", "n2", "-n", "kube-node-lease", "x=y")
    assert err.startswith('Error from server (Forbidden): leases.coordination.k8s.io "n2" is ')
    assert err.endswith("can only access node lease with the same name as the requesting node")
    # A create names its object in the body: NodeRestriction checks it there.
    node_world.admin("delete", "lease", "n2", "-n", "kube-node-lease")
    err = _forbidden(n1, "create", "-f", "-", input=_lease("n2"))
    assert "can only access node lease with the same name as the requesting node" in err
    annotations = json.loads(node_world.admin("get", "node", "n2", "-o", "json"))["metadata"]
    assert "berth.test/seen" not in (annotations.get("annotations") or {})


def test_node_updates_status_of_its_own_pods_only(node_world: World) -> None:
    status = {"status": {"conditions": [{"type": "PodReadyToStartContainers", "status": "True"}]}}
    own = _patch(node_world, "n1", f"/api/v1/namespaces/{NODE_NS}/pods/p1/status", status)
    assert own.status_code == 200, own.text
    assert own.json()["status"]["conditions"][0]["type"] == "PodReadyToStartContainers"
    other = _patch(node_world, "n1", f"/api/v1/namespaces/{NODE_NS}/pods/p2/status", status)
    assert other.status_code == 403
    message = other.json()["message"]
    assert message.startswith('pods "p2" is forbidden: ')
    assert message.endswith(
        'node "n1" can only update pod status for pods with spec.nodeName set to itself'
    )
    n1 = node_world["n1"]
    # Reading pods is allowed; changing their spec is not.
    n1("get", "pod", "p2", "-n", NODE_NS)
    assert "forbidden" in _forbidden(n1, "label", "pod", "p1", "-n", NODE_NS, "x=y")


def test_node_reads_only_secrets_its_pods_use(node_world: World) -> None:
    n1 = node_world["n1"]
    secret = json.loads(n1("get", "secret", "used-on-n1", "-n", NODE_NS, "-o", "json"))
    assert secret["metadata"]["name"] == "used-on-n1"
    n1("get", "configmap", "env-on-n1", "-n", NODE_NS)
    for name in ("unused", "used-on-n2"):
        assert _forbidden(n1, "get", "secret", name, "-n", NODE_NS) == (
            f'Error from server (Forbidden): secrets "{name}" is forbidden: User '
            f'"system:node:n1" cannot get resource "secrets" in API group "" in the namespace '
            f"\"{NODE_NS}\": no relationship found between node 'n1' and this object"
        )
    assert "forbidden" in _forbidden(n1, "get", "secrets", "-n", NODE_NS)
    # n2 reads its own pod's secret, not n1's.
    node_world["n2"]("get", "secret", "used-on-n2", "-n", NODE_NS)
    assert "no relationship found" in _forbidden(
        node_world["n2"], "get", "secret", "used-on-n1", "-n", NODE_NS
    )
