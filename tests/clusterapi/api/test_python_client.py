"""The official ``kubernetes`` Python client (37.x) against a live Berth, as its users call it.

CRUD on pods, deployments, services and configmaps (bodies built from models and from plain
dicts), the three patch types the client sends, label and field selectors, watches fed from
another thread, the exact ``Status`` bodies of conflicts, 410 Gone after the change log is
compacted (then a relist and a resumed watch), the scale subresource, the discovery calls the
client makes with trailing slashes, and the DynamicClient's server-side apply.

The module's server keeps a short change log (``BERTH_CHANGELOG_RETENTION``) and compacts it
only on demand, so that the expiry test can push revisions out of it with a handful of writes
and ``manage.py compact``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.exceptions import ApiException

from tests.live import LiveServer

if TYPE_CHECKING:
    import urllib3

pytestmark = pytest.mark.e2e

# Small enough that 2 * RETENTION writes push any earlier revision out of the change log.
RETENTION = 20


@pytest.fixture(scope="module")
def live_server_berth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """This module's server, with a change log short enough to expire revisions on demand."""
    env = {
        "BERTH_CHANGELOG_RETENTION": str(RETENTION),
        # Compaction only when the test asks (manage.py compact), so the floor it reports
        # stays put while the test checks the 410 answers.
        "BERTH_COMPACTION_INTERVAL": "0",
    }
    server = LiveServer(tmp_path_factory.mktemp("berth"), env=env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def core(k8s_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(k8s_client)


@pytest.fixture(scope="module")
def apps(k8s_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(k8s_client)


@pytest.fixture
def ns(core: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace per test, deleted (with its contents) afterwards."""
    name = "py-" + secrets.token_hex(4)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


# The client's models type every field optional; the server always sends these ones.
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class _HasMetadata(Protocol):
    @property
    def metadata(self) -> client.V1ObjectMeta | None: ...


class _HasSpec(Protocol[T_co]):
    @property
    def spec(self) -> T_co | None: ...


class _HasStatus(Protocol[T_co]):
    @property
    def status(self) -> T_co | None: ...


def some(value: T | None) -> T:
    """An optional field's value, which must be set."""
    assert value is not None
    return value


def meta(obj: _HasMetadata) -> client.V1ObjectMeta:
    return some(obj.metadata)


def spec(obj: _HasSpec[T]) -> T:
    return some(obj.spec)


def status(obj: _HasStatus[T]) -> T:
    return some(obj.status)


def rv(metadata: client.V1ObjectMeta | client.V1ListMeta | None) -> int:
    """A resourceVersion, as a number."""
    assert metadata is not None
    return int(some(metadata.resource_version))


def error_body(exc: ApiException) -> Any:
    """The decoded JSON body of a failed call."""
    return json.loads(some(exc.body))


def status_line(message: str, reason: str, code: int, details: dict[str, Any] | None = None) -> str:
    """A failure ``Status`` as upstream encodes it: compact, upstream key order, newline."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = details
    body["code"] = code
    return json.dumps(body, separators=(",", ":")) + "\n"


def pod(name: str, labels: dict[str, str] | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox")]),
    )


def deployment(name: str, replicas: int = 1) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="nginx:1.27")]
                ),
            ),
        ),
    )


# --- CRUD ---------------------------------------------------------------------------------------


def test_configmap_crud_from_models_and_dicts(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="from-model"), data={"a": "1"}),
    )
    assert meta(created).uid
    assert rv(created.metadata) > 0
    assert meta(created).creation_timestamp is not None
    assert created.data == {"a": "1"}

    from_dict = core.create_namespaced_config_map(
        ns,
        # The client takes plain dicts as bodies too; its annotations name only the models.
        {"metadata": {"name": "from-dict", "labels": {"src": "dict"}}, "data": {"b": "2"}},  # type: ignore[arg-type]
    )
    assert from_dict.kind == "ConfigMap"
    assert from_dict.api_version == "v1"
    assert meta(from_dict).labels == {"src": "dict"}

    read = core.read_namespaced_config_map("from-model", ns)
    assert meta(read).uid == meta(created).uid
    assert meta(read).resource_version == meta(created).resource_version

    names = [meta(i).name for i in core.list_namespaced_config_map(ns).items]
    assert {"from-model", "from-dict"} <= set(names)

    some(read.data)["c"] = "3"
    replaced = core.replace_namespaced_config_map("from-model", ns, read)
    assert replaced.data == {"a": "1", "c": "3"}
    assert rv(replaced.metadata) > rv(read.metadata)

    # A dict body is a strategic merge patch: maps merge.
    patched = core.patch_namespaced_config_map("from-model", ns, {"data": {"d": "4"}})
    assert patched.data == {"a": "1", "c": "3", "d": "4"}
    # A list body is a JSON patch: /data is replaced wholesale.
    patched = core.patch_namespaced_config_map(
        "from-model", ns, [{"op": "replace", "path": "/data", "value": {"only": "this"}}]
    )
    assert patched.data == {"only": "this"}
    # A merge patch: null deletes a key.
    patched = core.patch_namespaced_config_map(
        "from-model",
        ns,
        {"data": {"only": None, "merged": "yes"}},
        _content_type="application/merge-patch+json",
    )
    assert patched.data == {"merged": "yes"}

    # Patching with the same content again is a no-op: the resourceVersion stays.
    again = core.patch_namespaced_config_map("from-model", ns, {"data": {"merged": "yes"}})
    assert meta(again).resource_version == meta(patched).resource_version

    core.delete_namespaced_config_map("from-model", ns)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("from-model", ns)
    assert missing.value.status == 404
    assert missing.value.body == status_line(
        'configmaps "from-model" not found',
        "NotFound",
        404,
        {"name": "from-model", "kind": "configmaps"},
    )


def test_pod_crud_and_delete_returns_the_pod(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_pod(ns, pod("web", {"app": "web"}))
    assert spec(created).containers[0].name == "main"
    assert status(created).phase == "Pending"

    from_dict = core.create_namespaced_pod(
        ns,
        {  # type: ignore[arg-type]  # a plain dict body, as above
            "metadata": {"name": "dict-pod"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]
            },
        },
    )
    # Defaulting as upstream: container ports get protocol TCP.
    assert some(spec(from_dict).containers[0].ports)[0].protocol == "TCP"

    current = core.read_namespaced_pod("web", ns)
    some(meta(current).labels)["tier"] = "front"
    replaced = core.replace_namespaced_pod("web", ns, current)
    assert meta(replaced).labels == {"app": "web", "tier": "front"}

    # Strategic merge: containers merge by name, so the image changes in place.
    patched = core.patch_namespaced_pod(
        "web", ns, {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
    )
    assert [(c.name, c.image) for c in spec(patched).containers] == [("main", "busybox:1.37")]
    patched = core.patch_namespaced_pod(
        "web", ns, [{"op": "add", "path": "/metadata/annotations", "value": {"note": "json"}}]
    )
    assert meta(patched).annotations == {"note": "json"}
    patched = core.patch_namespaced_pod(
        "web",
        ns,
        {"metadata": {"labels": {"tier": None}}},
        _content_type="application/merge-patch+json",
    )
    assert meta(patched).labels == {"app": "web"}

    # The typed client deserializes DELETE's answer as a V1Pod: it must be the object.
    deleted = core.delete_namespaced_pod("web", ns)
    assert isinstance(deleted, client.V1Pod)
    assert meta(deleted).name == "web"
    assert meta(deleted).uid == meta(created).uid
    assert "web" not in [meta(p).name for p in core.list_namespaced_pod(ns).items]


def test_binding_assigns_a_node_once_and_refuses_a_bad_name(
    core: client.CoreV1Api, ns: str
) -> None:
    body = pod("bound", {"app": "bound"})
    spec(body).scheduler_name = "elsewhere"  # not ours: Berth's scheduler leaves it alone
    core.create_namespaced_pod(ns, body)

    def bind(node: str) -> Any:
        binding = {"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": node}}
        # The client cannot read the Status a binding answers into its V1Binding model. It takes
        # a plain dict body too, though its annotation names only the model.
        return core.create_namespaced_pod_binding("bound", ns, binding, _preload_content=False)  # type: ignore[arg-type]

    with pytest.raises(ApiException) as invalid:
        bind("Not_A_Node")
    assert invalid.value.status == 422
    assert "target.name" in error_body(invalid.value)["message"]

    answer = bind("node-a")
    assert answer.status == 201
    bound = core.read_namespaced_pod("bound", ns)
    assert spec(bound).node_name == "node-a"
    conditions = some(status(bound).conditions)
    assert [(c.type, c.status) for c in conditions] == [("PodScheduled", "True")]
    # Bindings bypass field management, as upstream.
    managed = json.dumps([m.to_dict() for m in some(meta(bound).managed_fields)], default=str)
    assert "f:nodeName" not in managed and "f:spec" in managed

    with pytest.raises(ApiException) as again:
        bind("node-b")
    assert again.value.status == 409
    assert 'already assigned to node "node-a"' in error_body(again.value)["message"]


def test_deployment_crud_and_generation(apps: client.AppsV1Api, ns: str) -> None:
    created = apps.create_namespaced_deployment(ns, deployment("shop"))
    assert meta(created).generation == 1
    # Upstream defaults.
    assert some(spec(created).strategy).type == "RollingUpdate"
    assert spec(created).revision_history_limit == 10
    assert spec(created).progress_deadline_seconds == 600

    from_dict = apps.create_namespaced_deployment(
        ns,
        {  # type: ignore[arg-type]  # a plain dict body, as above
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "dict-deploy"},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        },
    )
    assert spec(from_dict).replicas == 1

    # A metadata-only change leaves generation alone.
    labelled = apps.patch_namespaced_deployment(
        "shop",
        ns,
        {"metadata": {"labels": {"team": "a"}}},
        _content_type="application/merge-patch+json",
    )
    assert meta(labelled).generation == 1

    # Strategic merge adds a container next to the existing one (merge key: name).
    patched = apps.patch_namespaced_deployment(
        "shop",
        ns,
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}},
    )
    assert sorted(c.name for c in spec(spec(patched).template).containers) == ["sidecar", "web"]
    assert meta(patched).generation == 2

    patched = apps.patch_namespaced_deployment(
        "shop", ns, [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    )
    assert spec(patched).replicas == 4
    assert meta(patched).generation == 3

    current = apps.read_namespaced_deployment("shop", ns)
    spec(current).replicas = 2
    replaced = apps.replace_namespaced_deployment("shop", ns, current)
    assert spec(replaced).replicas == 2
    assert meta(replaced).generation == 4

    listed = apps.list_namespaced_deployment(ns)
    assert sorted(some(meta(d).name) for d in listed.items) == ["dict-deploy", "shop"]

    apps.delete_namespaced_deployment("shop", ns)
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("shop", ns)
    assert missing.value.body == status_line(
        'deployments.apps "shop" not found',
        "NotFound",
        404,
        {"name": "shop", "group": "apps", "kind": "deployments"},
    )


def test_service_crud_and_delete_returns_the_service(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="front", labels={"app": "front"}),
            spec=client.V1ServiceSpec(
                selector={"app": "front"},
                ports=[client.V1ServicePort(name="http", port=80, target_port=8080)],
            ),
        ),
    )
    assert spec(created).type == "ClusterIP"
    assert some(spec(created).ports)[0].protocol == "TCP"
    # Upstream sets an empty loadBalancer status; the client's own tests assert it is truthy.
    assert status(created).load_balancer is not None

    from_dict = core.create_namespaced_service(
        ns,
        {"metadata": {"name": "back"}, "spec": {"ports": [{"port": 5432}]}},  # type: ignore[arg-type]
    )
    assert some(spec(from_dict).ports)[0].port == 5432

    # Strategic merge: Service ports merge by port, so a new port is added beside 80.
    patched = core.patch_namespaced_service(
        "front", ns, {"spec": {"ports": [{"name": "alt", "port": 8080, "target_port": 8080}]}}
    )
    assert sorted(p.port for p in some(spec(patched).ports)) == [80, 8080]
    patched = core.patch_namespaced_service(
        "front",
        ns,
        {"metadata": {"annotations": {"merged": "true"}}},
        _content_type="application/merge-patch+json",
    )
    assert meta(patched).annotations == {"merged": "true"}
    alt = [p.port for p in some(spec(patched).ports)].index(8080)
    patched = core.patch_namespaced_service(
        "front", ns, [{"op": "remove", "path": f"/spec/ports/{alt}"}]
    )
    assert [p.port for p in some(spec(patched).ports)] == [80]

    current = core.read_namespaced_service("front", ns)
    spec(current).selector = {"app": "front", "tier": "web"}
    replaced = core.replace_namespaced_service("front", ns, current)
    assert spec(replaced).selector == {"app": "front", "tier": "web"}

    deleted = core.delete_namespaced_service("front", ns)
    assert isinstance(deleted, client.V1Service)
    assert meta(deleted).uid == meta(created).uid
    assert [meta(s).name for s in core.list_namespaced_service(ns).items] == ["back"]


# --- selectors ----------------------------------------------------------------------------------


def test_label_and_field_selectors(core: client.CoreV1Api, ns: str) -> None:
    for name, labels in (
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web", "tier": "back"}),
        ("c", {"app": "db"}),
    ):
        core.create_namespaced_pod(ns, pod(name, labels))

    def names(**kwargs: Any) -> list[str]:
        return sorted(some(meta(p).name) for p in core.list_namespaced_pod(ns, **kwargs).items)

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app=web,tier!=front") == ["b"]
    assert names(label_selector="tier in (front,back)") == ["a", "b"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="metadata.name!=c") == ["a", "b"]
    assert names(field_selector="status.phase=Pending", label_selector="tier=back") == ["b"]
    assert names(field_selector=f"metadata.namespace={ns}") == ["a", "b", "c"]
    # Across namespaces, a field selector on the namespace narrows to this one.
    everywhere = core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert sorted(some(meta(p).name) for p in everywhere.items) == ["a", "b", "c"]

    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod(ns, field_selector="spec.nothing=x")
    assert bad.value.status == 400
    assert error_body(bad.value)["reason"] == "BadRequest"


# --- watch --------------------------------------------------------------------------------------


def _create_modify_delete(core: client.CoreV1Api, ns: str, name: str) -> None:
    """Create, modify and delete one ConfigMap: the three event types of a watch."""
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"v": "1"})
    )
    core.patch_namespaced_config_map(name, ns, {"data": {"v": "2"}})
    core.delete_namespaced_config_map(name, ns)


def test_watch_receives_added_modified_deleted(core: client.CoreV1Api, ns: str) -> None:
    # The watch opens with a synthetic ADDED for this object; the changes start only once it
    # has arrived, so they are certainly live events rather than part of the initial state.
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="sentinel"))
    )
    changer = threading.Thread(
        target=_create_modify_delete, args=(core, ns, "watched"), daemon=True
    )
    events: list[tuple[str, str, dict[str, str] | None]] = []
    w = watch.Watch()
    started = time.monotonic()
    for event in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=10):
        obj = event["object"]
        assert isinstance(obj, client.V1ConfigMap)
        if meta(obj).name == "sentinel" and changer.ident is None:
            changer.start()
        if meta(obj).name != "watched":
            continue
        events.append((event["type"], some(meta(obj).resource_version), obj.data))
        if event["type"] == "DELETED":
            w.stop()
    changer.join(10)
    assert [(t, d) for t, _rv, d in events] == [
        ("ADDED", {"v": "1"}),
        ("MODIFIED", {"v": "2"}),
        ("DELETED", {"v": "2"}),
    ]
    revisions = [int(rv) for _t, rv, _d in events]
    assert revisions == sorted(revisions) and len(set(revisions)) == 3
    # Stopped on the DELETED event, long before the timeout.
    assert time.monotonic() - started < 9


def test_watch_starts_with_existing_objects_and_ends_at_timeout(
    core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="present"))
    )
    started = time.monotonic()
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=2)
    ]
    elapsed = time.monotonic() - started
    # kube-root-ca.crt may or may not be published into namespaces; only ours is asserted.
    assert ("ADDED", "present") in seen
    assert all(t == "ADDED" for t, _ in seen)
    assert 1.5 <= elapsed < 6


def test_watch_replays_from_a_resource_version(core: client.CoreV1Api, ns: str) -> None:
    listed = core.list_namespaced_config_map(ns)
    _create_modify_delete(core, ns, "replayed")
    # Every change happened before the watch connected: it is replayed from the change log.
    # (The namespace's kube-root-ca.crt, published by a controller meanwhile, is not ours.)
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=some(listed.metadata).resource_version,
            timeout_seconds=1,
        )
        if e["object"].metadata.name != "kube-root-ca.crt"
    ]
    assert seen == [("ADDED", "replayed"), ("MODIFIED", "replayed"), ("DELETED", "replayed")]


# --- conflicts ----------------------------------------------------------------------------------


def test_replace_with_a_stale_resource_version_is_409_conflict(
    core: client.CoreV1Api, apps: client.AppsV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cas"), data={"n": "0"})
    )
    first = core.read_namespaced_config_map("cas", ns)
    second = core.read_namespaced_config_map("cas", ns)
    some(first.data)["n"] = "1"
    core.replace_namespaced_config_map("cas", ns, first)
    some(second.data)["n"] = "2"
    with pytest.raises(ApiException) as lost:
        core.replace_namespaced_config_map("cas", ns, second)
    assert lost.value.status == 409
    assert lost.value.reason == "Conflict"
    assert lost.value.body == status_line(
        'Operation cannot be fulfilled on configmaps "cas": the object has been modified; '
        "please apply your changes to the latest version and try again",
        "Conflict",
        409,
        {"name": "cas", "kind": "configmaps"},
    )
    assert core.read_namespaced_config_map("cas", ns).data == {"n": "1"}

    apps.create_namespaced_deployment(ns, deployment("cas"))
    stale = apps.read_namespaced_deployment("cas", ns)
    apps.patch_namespaced_deployment_scale("cas", ns, {"spec": {"replicas": 3}})
    spec(stale).replicas = 5
    with pytest.raises(ApiException) as lost_apps:
        apps.replace_namespaced_deployment("cas", ns, stale)
    assert lost_apps.value.body == status_line(
        'Operation cannot be fulfilled on deployments.apps "cas": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "Conflict",
        409,
        {"name": "cas", "group": "apps", "kind": "deployments"},
    )


def test_create_of_an_existing_name_is_409_already_exists(
    core: client.CoreV1Api, apps: client.AppsV1Api, ns: str
) -> None:
    spec = client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])
    core.create_namespaced_service(
        ns, client.V1Service(metadata=client.V1ObjectMeta(name="mock-2"), spec=spec)
    )
    with pytest.raises(ApiException) as taken:
        core.create_namespaced_service(
            ns, client.V1Service(metadata=client.V1ObjectMeta(name="mock-2"), spec=spec)
        )
    assert taken.value.status == 409
    assert taken.value.body == status_line(
        'services "mock-2" already exists',
        "AlreadyExists",
        409,
        {"name": "mock-2", "kind": "services"},
    )

    apps.create_namespaced_deployment(ns, deployment("twice"))
    with pytest.raises(ApiException) as taken_apps:
        apps.create_namespaced_deployment(ns, deployment("twice"))
    assert taken_apps.value.body == status_line(
        'deployments.apps "twice" already exists',
        "AlreadyExists",
        409,
        {"name": "twice", "group": "apps", "kind": "deployments"},
    )


def test_create_in_a_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map(
            "no-such-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
        )
    assert missing.value.status == 404
    assert missing.value.body == status_line(
        'namespaces "no-such-ns" not found',
        "NotFound",
        404,
        {"name": "no-such-ns", "kind": "namespaces"},
    )


# --- expiry: 410 Gone after compaction ----------------------------------------------------------


def test_too_old_resource_version_is_410_then_relist_and_resume(
    core: client.CoreV1Api, ns: str, live_server_berth: LiveServer
) -> None:
    for i in range(3):
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"page-{i}"))
        )
    first_page = core.list_namespaced_config_map(ns, limit=1)
    token = some(first_page.metadata)._continue
    assert token
    old_rv = some(some(first_page.metadata).resource_version)

    # Push old_rv out of the retained window, then compact as an operator would.
    for i in range(2 * RETENTION):
        core.patch_namespaced_config_map("page-0", ns, {"data": {"i": str(i)}})
    out = live_server_berth.manage("compact")
    floor = int(out.split()[-1])
    assert floor > int(old_rv) + 1

    # A watch from the compacted revision: one ERROR event with the upstream Status...
    # Without preloading, the call answers the raw urllib3 response, not the annotated list.
    raw = cast(
        "urllib3.BaseHTTPResponse",
        core.list_namespaced_config_map(
            ns, watch=True, resource_version=old_rv, timeout_seconds=5, _preload_content=False
        ),
    )
    try:
        assert raw.status == 200
        body = raw.data.decode()
    finally:
        raw.release_conn()
    status = status_line(f"too old resource version: {old_rv} ({floor - 1})", "Expired", 410)
    assert body == '{"type":"ERROR","object":' + status[:-1] + "}\n"

    # ... which the Watch helper raises as a 410 ApiException.
    with pytest.raises(ApiException) as expired:
        list(
            watch.Watch().stream(
                core.list_namespaced_config_map, ns, resource_version=old_rv, timeout_seconds=5
            )
        )
    assert expired.value.status == 410
    assert "too old resource version" in str(expired.value.reason)

    # A continue token from before the compaction has expired too.
    with pytest.raises(ApiException) as expired_list:
        core.list_namespaced_config_map(ns, limit=1, _continue=token)
    assert expired_list.value.status == 410
    assert error_body(expired_list.value)["reason"] == "Expired"

    # The client's way out: relist, then watch from the list's resourceVersion.
    relisted = core.list_namespaced_config_map(ns)
    assert rv(relisted.metadata) >= floor
    core.patch_namespaced_config_map("page-1", ns, {"data": {"after": "relist"}})
    seen = [
        (e["type"], e["object"].metadata.name, e["object"].data)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=some(relisted.metadata).resource_version,
            timeout_seconds=1,
        )
    ]
    assert seen == [("MODIFIED", "page-1", {"after": "relist"})]


# --- subresources, discovery, server-side apply -------------------------------------------------


def test_deployment_scale_subresource(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("scaled", replicas=2))
    scale = apps.read_namespaced_deployment_scale("scaled", ns)
    assert isinstance(scale, client.V1Scale)
    assert spec(scale).replicas == 2
    assert status(scale).selector == "app=scaled"
    assert meta(scale).name == "scaled"

    patched = apps.patch_namespaced_deployment_scale("scaled", ns, {"spec": {"replicas": 5}})
    assert spec(patched).replicas == 5
    parent = apps.read_namespaced_deployment("scaled", ns)
    assert spec(parent).replicas == 5
    assert meta(parent).generation == 2
    assert meta(patched).resource_version == meta(parent).resource_version

    with pytest.raises(ApiException) as negative:
        apps.patch_namespaced_deployment_scale("scaled", ns, {"spec": {"replicas": -1}})
    assert negative.value.status == 422
    detail = "Invalid value: -1: must be greater than or equal to 0"
    assert negative.value.body == status_line(
        f'Scale.autoscaling "scaled" is invalid: spec.replicas: {detail}',
        "Invalid",
        422,
        {
            "name": "scaled",
            "group": "autoscaling",
            "kind": "Scale",
            "causes": [
                {"reason": "FieldValueInvalid", "message": detail, "field": "spec.replicas"}
            ],
        },
    )
    assert spec(apps.read_namespaced_deployment("scaled", ns)).replicas == 5


def test_discovery_with_trailing_slashes(k8s_client: client.ApiClient) -> None:
    versions = client.CoreApi(k8s_client).get_api_versions()
    assert versions.versions == ["v1"]
    assert versions.server_address_by_client_cidrs

    code = client.VersionApi(k8s_client).get_code()
    assert code.major == "1"
    assert code.minor == "37"
    assert code.git_version.startswith("v1.37.")

    resources = client.CoreV1Api(k8s_client).get_api_resources()
    assert resources.group_version == "v1"
    by_name = {r.name: r for r in resources.resources}
    assert by_name["pods"].namespaced is True
    assert by_name["pods"].kind == "Pod"
    assert "po" in some(by_name["pods"].short_names)
    assert by_name["namespaces"].namespaced is False
    assert "pods/status" in by_name

    groups = client.ApisApi(k8s_client).get_api_versions()
    assert "apps" in [g.name for g in groups.groups]
    apps_resources = client.AppsV1Api(k8s_client).get_api_resources()
    assert "deployments/scale" in [r.name for r in apps_resources.resources]


def test_dynamic_client_server_side_apply_creates_then_is_idempotent(
    k8s_client: client.ApiClient, ns: str
) -> None:
    dyn = dynamic.DynamicClient(k8s_client)
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "namespace": ns, "labels": {"via": "ssa"}},
        "data": {"key": "value"},
    }
    created = configmaps.server_side_apply(body=manifest, field_manager="python-client")
    assert created.metadata.name == "applied"
    assert created.data.key == "value"
    managers = [(m.manager, m.operation) for m in created.metadata.managedFields]
    assert managers == [("python-client", "Apply")]

    again = configmaps.server_side_apply(body=manifest, field_manager="python-client")
    assert again.metadata.resourceVersion == created.metadata.resourceVersion
    assert again.metadata.uid == created.metadata.uid

    manifest["data"] = {"key": "changed"}
    changed = configmaps.server_side_apply(body=manifest, field_manager="python-client")
    assert changed.data.key == "changed"
    assert int(changed.metadata.resourceVersion) > int(created.metadata.resourceVersion)

    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = client.ApiClient().sanitize_for_serialization(deployment("applied"))
    body.update({"apiVersion": "apps/v1", "kind": "Deployment"})
    first = deployments.server_side_apply(body=body, namespace=ns, field_manager="python-client")
    second = deployments.server_side_apply(body=body, namespace=ns, field_manager="python-client")
    assert first.metadata.generation == second.metadata.generation == 1
    assert first.metadata.resourceVersion == second.metadata.resourceVersion
