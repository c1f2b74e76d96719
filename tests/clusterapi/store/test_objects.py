"""The store's object rules, called directly (no HTTP): what every write path relies on.

Identity (uid, creationTimestamp, generateName), ``metadata.generation`` counting spec changes
only, ``resourceVersion`` taken from the one global revision and kept by no-op writes,
compare-and-swap, the status subresource, finalizers and ``deletionTimestamp``, namespace
lifecycle, rejected writes leaving no trace, list paging and change-log compaction.

The tests run in real transactions (``transaction=True``) because the store's side effects
(waking watches and controllers) happen on commit. Controller wake-ups are dropped: these are
unit tests of the store, and a test that needs a controller's effect makes the same store call
the controller would.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import transaction

from clusterapi import controllers, store
from clusterapi.core import watch
from clusterapi.core.models import Change, Resource
from clusterapi.resources import registered as kind
from clusterapi.store import objects, sql
from clusterapi.store.errors import ApiError

pytestmark = pytest.mark.django_db(transaction=True)

Obj = dict[str, Any]


CONFIGMAP = kind("v1", "ConfigMap")
DEPLOYMENT = kind("apps/v1", "Deployment")
NAMESPACE = kind("v1", "Namespace")


@pytest.fixture(autouse=True)
def quiet_controllers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Controllers are not under test here: their wake-ups are dropped."""

    def wake(*args: object) -> None:
        return None

    monkeypatch.setattr(controllers, "wake", wake)


@pytest.fixture(autouse=True)
def notified(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the store announced a commit to the watch feed (one entry per call)."""
    calls: list[int] = []
    monkeypatch.setattr(watch, "notify", lambda: calls.append(1))
    return calls


@pytest.fixture
def ns() -> str:
    store.create(NAMESPACE, {"metadata": {"name": "team"}})
    return "team"


def configmap(name: str, data: dict[str, str] | None = None, **meta: Any) -> Obj:
    return {"metadata": {"name": name, **meta}, "data": data or {}}


def deployment(name: str, replicas: int = 1) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }


def footprint() -> tuple[int, int, int]:
    """What a rejected write must leave untouched: rows, change-log rows, the revision."""
    return Resource.objects.count(), Change.objects.count(), store.current_revision()


def rv(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


# --- identity -----------------------------------------------------------------------------------


def test_create_stamps_identity_and_ignores_client_set_server_fields(ns: str) -> None:
    body = configmap(
        "settings",
        {"a": "1"},
        uid="client-chosen",
        resourceVersion="999",
        creationTimestamp="2000-01-01T00:00:00Z",
        deletionTimestamp="2000-01-01T00:00:00Z",
        generation=7,
    )
    created = store.create(CONFIGMAP, body, namespace=ns).obj
    meta = created["metadata"]
    assert str(uuid.UUID(meta["uid"])) == meta["uid"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    stamped = datetime.strptime(meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 5
    assert "deletionTimestamp" not in meta
    assert meta["generation"] == 1
    assert meta["namespace"] == ns
    assert created["apiVersion"] == "v1" and created["kind"] == "ConfigMap"
    assert rv(created) == store.current_revision()
    # What the store returns is what it serves afterwards.
    assert store.get(CONFIGMAP, ns, "settings") == created


def test_generate_name_appends_a_random_suffix(ns: str) -> None:
    first = store.create(CONFIGMAP, {"metadata": {"generateName": "job-"}}, namespace=ns).obj
    second = store.create(CONFIGMAP, {"metadata": {"generateName": "job-"}}, namespace=ns).obj
    for obj in (first, second):
        assert re.fullmatch(r"job-[bcdfghjklmnpqrstvwxz2456789]{5}", obj["metadata"]["name"])
        assert obj["metadata"]["generateName"] == "job-"
    assert first["metadata"]["name"] != second["metadata"]["name"]
    # An explicit name wins over generateName.
    named = store.create(
        CONFIGMAP, {"metadata": {"name": "fixed", "generateName": "job-"}}, namespace=ns
    ).obj
    assert named["metadata"]["name"] == "fixed"


def test_update_keeps_uid_and_creation_timestamp(ns: str) -> None:
    created = store.create(CONFIGMAP, configmap("keep"), namespace=ns).obj
    body = configmap("keep", {"b": "2"}, creationTimestamp="2001-01-01T00:00:00Z")
    updated = store.update(CONFIGMAP, ns, "keep", body).obj
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert updated["data"] == {"b": "2"}


# --- resourceVersion and generation -------------------------------------------------------------


def test_resource_versions_come_from_one_global_revision(ns: str) -> None:
    store.create(NAMESPACE, {"metadata": {"name": "other"}})
    start = store.current_revision()
    a = store.create(CONFIGMAP, configmap("a"), namespace=ns).obj
    d = store.create(DEPLOYMENT, deployment("d"), namespace="other").obj
    b = store.update(CONFIGMAP, ns, "a", configmap("a", {"k": "v"})).obj
    # One counter across kinds and namespaces: each write takes the next revision.
    assert [rv(a), rv(d), rv(b)] == [start + 1, start + 2, start + 3]
    assert store.current_revision() == start + 3
    assert store.list_objects(CONFIGMAP, ns).resource_version == start + 3
    changes = list(
        Change.objects.filter(revision__gt=start)
        .order_by("revision")
        .values_list("revision", "type")
    )
    assert changes == [(start + 1, "ADDED"), (start + 2, "ADDED"), (start + 3, "MODIFIED")]


def test_no_op_write_keeps_resource_version_and_writes_nothing(
    ns: str, notified: list[int]
) -> None:
    created = store.create(CONFIGMAP, configmap("same", {"k": "v"}), namespace=ns).obj
    before = footprint()
    notified.clear()
    result = store.update(CONFIGMAP, ns, "same", configmap("same", {"k": "v"}))
    assert result.changed is False
    assert result.obj == created
    patched = store.guaranteed_update(CONFIGMAP, ns, "same", lambda obj: obj)
    assert patched.changed is False
    assert rv(patched.obj) == rv(created)
    assert footprint() == before
    # Nothing committed, so watchers are not woken either.
    assert notified == []


def test_generation_counts_spec_changes_only(ns: str) -> None:
    created = store.create(DEPLOYMENT, deployment("web"), namespace=ns).obj
    assert created["metadata"]["generation"] == 1

    def relabel(obj: Obj) -> Obj:
        obj["metadata"].setdefault("labels", {})["team"] = "a"
        return obj

    labelled = store.guaranteed_update(DEPLOYMENT, ns, "web", relabel).obj
    assert labelled["metadata"]["generation"] == 1
    assert rv(labelled) > rv(created)

    def report(obj: Obj) -> Obj:
        obj["status"] = {"replicas": 1, "observedGeneration": 1}
        return obj

    reported = store.guaranteed_update(DEPLOYMENT, ns, "web", report, subresource="status").obj
    assert reported["metadata"]["generation"] == 1

    def scale(obj: Obj) -> Obj:
        obj["spec"]["replicas"] = 3
        return obj

    scaled = store.guaranteed_update(DEPLOYMENT, ns, "web", scale).obj
    assert scaled["metadata"]["generation"] == 2
    # Writing the same spec again bumps nothing.
    again = store.guaranteed_update(DEPLOYMENT, ns, "web", scale)
    assert again.changed is False
    assert again.obj["metadata"]["generation"] == 2


def test_client_cannot_set_generation(ns: str) -> None:
    store.create(DEPLOYMENT, deployment("gen"), namespace=ns)
    body = deployment("gen")
    body["metadata"]["generation"] = 42
    result = store.update(DEPLOYMENT, ns, "gen", body)
    assert result.changed is False
    assert result.obj["metadata"]["generation"] == 1


# --- compare-and-swap ---------------------------------------------------------------------------


def test_update_with_a_stale_resource_version_is_a_conflict(ns: str) -> None:
    created = store.create(CONFIGMAP, configmap("cas", {"n": "0"}), namespace=ns).obj
    stale = created["metadata"]["resourceVersion"]
    store.update(CONFIGMAP, ns, "cas", configmap("cas", {"n": "1"}, resourceVersion=stale))
    before = footprint()
    with pytest.raises(ApiError) as lost:
        store.update(CONFIGMAP, ns, "cas", configmap("cas", {"n": "2"}, resourceVersion=stale))
    assert lost.value.code == 409
    assert lost.value.reason == "Conflict"
    assert lost.value.message == (
        'Operation cannot be fulfilled on configmaps "cas": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert footprint() == before
    assert store.get(CONFIGMAP, ns, "cas")["data"] == {"n": "1"}
    # Without a resourceVersion an update is unconditional.
    assert store.update(CONFIGMAP, ns, "cas", configmap("cas", {"n": "3"})).obj["data"] == {
        "n": "3"
    }


def test_a_write_that_loses_the_swap_inside_the_transaction_is_a_conflict(ns: str) -> None:
    """Between reading the row and swapping it, another writer commits: 409, nothing written."""
    store.create(CONFIGMAP, configmap("race", {"n": "0"}), namespace=ns)
    stored = Resource.objects.get(resource="configmaps", namespace=ns, name="race")
    row = sql.Row(stored.pk, stored.revision, stored.data)
    store.update(CONFIGMAP, ns, "race", configmap("race", {"n": "winner"}))
    before = footprint()
    with pytest.raises(ApiError) as lost:
        objects._write_update(
            CONFIGMAP,
            row,
            objects.decode(row.data),
            configmap("race", {"n": "loser"}),
            subresource="",
            dry_run=False,
            field_validation="Strict",
            field_manager="",
            precondition_rv=None,
        )
    assert lost.value.reason == "Conflict"
    assert footprint() == before
    assert store.get(CONFIGMAP, ns, "race")["data"] == {"n": "winner"}


def test_guaranteed_update_retries_a_lost_race_with_the_fresh_object(ns: str) -> None:
    store.create(CONFIGMAP, configmap("counter", {"n": "0"}), namespace=ns)
    attempts = 0

    def increment(obj: Obj) -> Obj:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            # Another writer sneaks in after this read: the first swap must fail.
            store.update(CONFIGMAP, ns, "counter", configmap("counter", {"n": "10"}))
        obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
        return obj

    result = store.guaranteed_update(CONFIGMAP, ns, "counter", increment)
    assert attempts == 2
    assert result.obj["data"] == {"n": "11"}


def test_guaranteed_update_keeps_an_explicit_precondition(ns: str) -> None:
    created = store.create(CONFIGMAP, configmap("pinned"), namespace=ns).obj
    store.update(CONFIGMAP, ns, "pinned", configmap("pinned", {"x": "1"}))

    def stale_patch(obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
        obj["data"] = {"x": "2"}
        return obj

    with pytest.raises(ApiError) as lost:
        store.guaranteed_update(CONFIGMAP, ns, "pinned", stale_patch)
    assert lost.value.reason == "Conflict"
    assert store.get(CONFIGMAP, ns, "pinned")["data"] == {"x": "1"}


def test_update_of_a_missing_object_is_not_found(ns: str) -> None:
    before = footprint()
    with pytest.raises(ApiError) as missing:
        store.update(CONFIGMAP, ns, "ghost", configmap("ghost"))
    assert (missing.value.code, missing.value.message) == (404, 'configmaps "ghost" not found')
    assert footprint() == before


# --- status subresource -------------------------------------------------------------------------


def test_status_changes_only_through_the_status_subresource(ns: str) -> None:
    created = store.create(DEPLOYMENT, deployment("st"), namespace=ns).obj
    status_on_create = created.get("status")
    assert not (status_on_create or {}).get("readyReplicas")

    body = deployment("st")
    body["status"] = {"replicas": 9, "readyReplicas": 9}
    ignored = store.update(DEPLOYMENT, ns, "st", body)
    # The main resource drops status changes: nothing else changed, so nothing was written.
    assert ignored.changed is False
    assert ignored.obj.get("status") == status_on_create

    body = deployment("st", replicas=5)
    body["status"] = {"replicas": 2, "readyReplicas": 2}
    updated = store.update(DEPLOYMENT, ns, "st", body, subresource="status").obj
    assert updated["status"]["readyReplicas"] == 2
    # ... and the status subresource drops everything else.
    assert updated["spec"]["replicas"] == 1
    assert updated["metadata"]["generation"] == 1


def test_a_status_write_is_validated_with_full_field_paths(ns: str) -> None:
    store.create(DEPLOYMENT, deployment("bad-status"), namespace=ns)
    before = footprint()

    body = deployment("bad-status")
    body["status"] = {"replicas": "many"}
    with pytest.raises(ApiError) as mistyped:
        store.update(DEPLOYMENT, ns, "bad-status", body, subresource="status")
    assert (mistyped.value.code, mistyped.value.reason) == (422, "Invalid")
    assert [c.field for c in mistyped.value.causes] == ["status.replicas"]

    body["status"] = {"replicas": 1, "bogus": True}
    with pytest.raises(ApiError) as unknown:
        store.update(DEPLOYMENT, ns, "bad-status", body, subresource="status")
    assert unknown.value.code == 400
    assert 'unknown field "status.bogus"' in unknown.value.message
    assert footprint() == before

    # Warn drops the unknown field and keeps the rest.
    written = store.update(
        DEPLOYMENT, ns, "bad-status", body, subresource="status", field_validation="Warn"
    )
    assert written.obj["status"] == {"replicas": 1}
    assert written.warnings == ['unknown field "status.bogus"']


def test_create_drops_a_client_supplied_status(ns: str) -> None:
    body = deployment("fresh")
    body["status"] = {"readyReplicas": 3, "observedGeneration": 8}
    created = store.create(DEPLOYMENT, body, namespace=ns).obj
    assert "readyReplicas" not in (created.get("status") or {})
    assert "observedGeneration" not in (created.get("status") or {})


# --- finalizers and deletion --------------------------------------------------------------------


def test_object_with_finalizers_stays_until_the_last_is_removed(ns: str) -> None:
    store.create(
        CONFIGMAP,
        configmap("held", finalizers=["example.com/a", "example.com/b"]),
        namespace=ns,
    )
    marked = store.delete(CONFIGMAP, ns, "held")
    assert marked.deleted is False
    meta = marked.obj["metadata"]
    assert meta["deletionTimestamp"]
    assert meta["deletionGracePeriodSeconds"] == 0
    assert (
        store.get(CONFIGMAP, ns, "held")["metadata"]["deletionTimestamp"]
        == (meta["deletionTimestamp"])
    )
    last = Change.objects.order_by("-revision").first()
    assert last is not None and (last.type, last.name) == ("MODIFIED", "held")

    # Deleting again changes nothing.
    before = footprint()
    assert store.delete(CONFIGMAP, ns, "held").changed is False
    assert footprint() == before

    # A client cannot clear the deletionTimestamp.
    def undelete(obj: Obj) -> Obj:
        obj["metadata"].pop("deletionTimestamp")
        obj["metadata"]["finalizers"] = ["example.com/b"]
        return obj

    one_left = store.guaranteed_update(CONFIGMAP, ns, "held", undelete).obj
    assert one_left["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]
    assert store.get(CONFIGMAP, ns, "held")["metadata"]["finalizers"] == ["example.com/b"]

    def release(obj: Obj) -> Obj:
        obj["metadata"]["finalizers"] = []
        return obj

    gone = store.guaranteed_update(CONFIGMAP, ns, "held", release)
    assert gone.deleted is True
    with pytest.raises(ApiError) as missing:
        store.get(CONFIGMAP, ns, "held")
    assert missing.value.code == 404
    last = Change.objects.order_by("-revision").first()
    assert last is not None and (last.type, last.name) == ("DELETED", "held")
    assert rv(gone.obj) == last.revision


def test_no_new_finalizers_once_deletion_started(ns: str) -> None:
    store.create(CONFIGMAP, configmap("closing", finalizers=["example.com/a"]), namespace=ns)
    store.delete(CONFIGMAP, ns, "closing")
    before = footprint()

    def add_finalizer(obj: Obj) -> Obj:
        obj["metadata"]["finalizers"].append("example.com/late")
        return obj

    with pytest.raises(ApiError) as refused:
        store.guaranteed_update(CONFIGMAP, ns, "closing", add_finalizer)
    assert refused.value.code == 422
    assert refused.value.message == (
        'ConfigMap "closing" is invalid: metadata.finalizers: Forbidden: no new finalizers can '
        'be added if the object is being deleted, found new finalizers []string{"example.com/late"}'
    )
    assert footprint() == before


def test_delete_without_finalizers_removes_at_once(ns: str) -> None:
    store.create(CONFIGMAP, configmap("brief"), namespace=ns)
    result = store.delete(CONFIGMAP, ns, "brief")
    assert result.deleted is True
    assert not Resource.objects.filter(name="brief").exists()
    with pytest.raises(ApiError) as again:
        store.delete(CONFIGMAP, ns, "brief")
    assert again.value.code == 404


def test_delete_preconditions(ns: str) -> None:
    created = store.create(CONFIGMAP, configmap("pre"), namespace=ns).obj
    before = footprint()
    with pytest.raises(ApiError) as wrong_uid:
        store.delete(CONFIGMAP, ns, "pre", precondition_uid="not-the-uid")
    assert wrong_uid.value.code == 409
    assert wrong_uid.value.message.startswith(
        'Operation cannot be fulfilled on configmaps "pre": Precondition failed: UID in '
        "precondition: not-the-uid, UID in object meta: "
    )
    with pytest.raises(ApiError):
        store.delete(CONFIGMAP, ns, "pre", precondition_rv="1")
    assert footprint() == before
    assert store.delete(CONFIGMAP, ns, "pre", precondition_uid=created["metadata"]["uid"]).deleted


# --- namespaces ---------------------------------------------------------------------------------


def test_create_needs_an_existing_namespace() -> None:
    before = footprint()
    with pytest.raises(ApiError) as missing:
        store.create(CONFIGMAP, configmap("orphan"), namespace="nowhere")
    assert missing.value.code == 404
    assert missing.value.message == 'namespaces "nowhere" not found'
    assert missing.value.details() == {"name": "nowhere", "kind": "namespaces"}
    assert footprint() == before


def test_create_in_a_terminating_namespace_is_forbidden(ns: str) -> None:
    store.create(CONFIGMAP, configmap("inside"), namespace=ns)
    terminating = store.delete(NAMESPACE, "", ns)
    assert terminating.deleted is False
    assert terminating.obj["status"]["phase"] == "Terminating"
    before = footprint()
    with pytest.raises(ApiError) as refused:
        store.create(DEPLOYMENT, deployment("late"), namespace=ns)
    assert refused.value.code == 403
    assert refused.value.reason == "Forbidden"
    assert refused.value.message == (
        f'deployments.apps "late" is forbidden: unable to create new content in namespace {ns} '
        "because it is being terminated"
    )
    assert refused.value.details() == {
        "name": "late",
        "group": "apps",
        "kind": "deployments",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": f"namespace {ns} is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }
    assert footprint() == before

    # Once its finalizers are gone (the namespace controller's last step, after emptying it)
    # the namespace itself goes.
    def finalize(obj: Obj) -> Obj:
        obj["spec"]["finalizers"] = []
        return obj

    assert store.guaranteed_update(NAMESPACE, "", ns, finalize, subresource="finalize").deleted
    with pytest.raises(ApiError) as gone:
        store.get(NAMESPACE, "", ns)
    assert gone.value.code == 404


# --- rejected writes and side effects -----------------------------------------------------------


def test_create_many_answers_each_create_and_a_taken_name_leaves_the_others_written(
    ns: str,
) -> None:
    first = store.create(CONFIGMAP, configmap("taken", {"v": "1"}), namespace=ns).obj
    before = store.current_revision()
    prepared = [
        store.prepare_create(CONFIGMAP, configmap(name, {"v": "2"}), namespace=ns)
        for name in ("a", "taken", "b")
    ]
    a, taken, b = store.create_many(prepared)
    assert isinstance(taken, ApiError)
    assert (taken.code, taken.reason) == (409, "AlreadyExists")
    assert taken.message == 'configmaps "taken" already exists'
    assert isinstance(a, store.WriteResult) and isinstance(b, store.WriteResult)
    # The taken name gave its revision back: the counter stays contiguous.
    assert (rv(a.obj), rv(b.obj)) == (before + 1, before + 2)
    assert store.current_revision() == before + 2
    changes = Change.objects.filter(revision__gt=before).order_by("revision")
    assert [(c.name, c.type) for c in changes] == [("a", "ADDED"), ("b", "ADDED")]
    assert store.get(CONFIGMAP, ns, "taken") == first
    assert store.get(CONFIGMAP, ns, "a") == a.obj


def test_prepare_create_refuses_what_create_refuses_and_writes_nothing(ns: str) -> None:
    before = footprint()
    with pytest.raises(ApiError) as bad_name:
        store.prepare_create(CONFIGMAP, configmap("Not_A_Name"), namespace=ns)
    assert bad_name.value.code == 422
    with pytest.raises(ApiError) as missing:
        store.prepare_create(CONFIGMAP, configmap("x"), namespace="nowhere")
    assert missing.value.code == 404
    prepared = store.prepare_create(CONFIGMAP, configmap("x"), namespace=ns)
    assert prepared.obj["metadata"]["uid"]
    assert "resourceVersion" not in prepared.obj["metadata"]
    assert footprint() == before


def test_rejected_writes_change_nothing(ns: str) -> None:
    store.create(DEPLOYMENT, deployment("ok"), namespace=ns)
    before = footprint()

    invalid = deployment("bad")
    del invalid["spec"]["selector"]
    with pytest.raises(ApiError) as no_selector:
        store.create(DEPLOYMENT, invalid, namespace=ns)
    assert no_selector.value.code == 422

    with pytest.raises(ApiError) as taken:
        store.create(DEPLOYMENT, deployment("ok"), namespace=ns)
    assert taken.value.reason == "AlreadyExists"

    mistyped = deployment("ok")
    mistyped["spec"]["replicas"] = "three"
    with pytest.raises(ApiError) as wrong_type:
        store.update(DEPLOYMENT, ns, "ok", mistyped)
    assert wrong_type.value.code == 422

    with pytest.raises(ApiError) as bad_name:
        store.create(CONFIGMAP, configmap("Not_A_Name"), namespace=ns)
    assert bad_name.value.code == 422

    def explode(obj: Obj) -> Obj:
        raise ApiError(400, "BadRequest", "the patch does not apply")

    with pytest.raises(ApiError):
        store.guaranteed_update(DEPLOYMENT, ns, "ok", explode)

    assert footprint() == before
    assert store.get(DEPLOYMENT, ns, "ok")["spec"]["replicas"] == 1


def test_dry_run_writes_nothing(ns: str) -> None:
    before = footprint()
    preview = store.create(CONFIGMAP, configmap("dry", {"a": "1"}), namespace=ns, dry_run=True)
    assert preview.obj["metadata"]["name"] == "dry"
    assert footprint() == before
    store.create(CONFIGMAP, configmap("wet"), namespace=ns)
    before = footprint()
    store.update(CONFIGMAP, ns, "wet", configmap("wet", {"b": "2"}), dry_run=True)
    store.delete(CONFIGMAP, ns, "wet", dry_run=True)
    assert footprint() == before


def test_side_effects_run_on_commit_only(ns: str, notified: list[int]) -> None:
    notified.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        store.create(CONFIGMAP, configmap("rolled-back"), namespace=ns)
        raise RuntimeError("the caller's transaction fails after the write")
    assert not Resource.objects.filter(name="rolled-back").exists()
    assert notified == []

    with transaction.atomic():
        store.create(CONFIGMAP, configmap("committed"), namespace=ns)
        # Inside the caller's transaction nothing is announced yet...
        assert notified == []
    # ... only once it commits.
    assert notified == [1]


# --- lists --------------------------------------------------------------------------------------


def test_list_pages_with_continue_tokens(ns: str) -> None:
    store.create(NAMESPACE, {"metadata": {"name": "zeta"}})
    names = [(ns, f"cm-{i}") for i in range(5)] + [("zeta", "cm-0"), ("zeta", "cm-1")]
    for namespace, name in names:
        store.create(CONFIGMAP, configmap(name, {"owner": namespace}), namespace=namespace)
    listed_at = store.current_revision()

    seen: list[tuple[str, str]] = []
    token = ""
    pages = 0
    while True:
        page = store.list_objects(CONFIGMAP, limit=3, continue_token=token)
        pages += 1
        assert page.resource_version == listed_at
        seen += [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in page.objects()]
        if not page.continue_token:
            assert page.remaining is None
            break
        assert page.remaining == len(names) - len(seen)
        token = page.continue_token
        # Writes between pages do not move the list's resourceVersion.
        store.update(CONFIGMAP, ns, "cm-0", configmap("cm-0", {"page": str(pages)}))
    assert pages == 3
    assert seen == sorted(names)

    one_namespace = store.list_objects(CONFIGMAP, "zeta", limit=1)
    assert [o["metadata"]["name"] for o in one_namespace.objects()] == ["cm-0"]
    rest = store.list_objects(CONFIGMAP, "zeta", continue_token=one_namespace.continue_token)
    assert [o["metadata"]["name"] for o in rest.objects()] == ["cm-1"]

    # With a filter, pages hold matching objects only.
    def in_zeta(obj: Obj) -> bool:
        return bool(obj["data"].get("owner") == "zeta")

    first = store.list_objects(CONFIGMAP, match=in_zeta, limit=1)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in first.objects()] == [
        ("zeta", "cm-0")
    ]
    second = store.list_objects(
        CONFIGMAP, match=in_zeta, limit=1, continue_token=first.continue_token
    )
    assert [o["metadata"]["name"] for o in second.objects()] == ["cm-1"]


def test_shared_lists_read_a_plain_listing_once_per_block(
    ns: str, django_assert_num_queries: Any
) -> None:
    store.create(CONFIGMAP, configmap("first"), namespace=ns)
    with store.shared_lists():
        with django_assert_num_queries(2):  # the revision, then the rows
            first = store.list_objects(CONFIGMAP, ns)
        with django_assert_num_queries(0):
            again = store.list_objects(CONFIGMAP, ns)
        assert again is first
        # Filtered, paged and other-scope listings are read as usual.
        assert store.list_objects(CONFIGMAP, ns, limit=1).objects()[0]["metadata"]["name"] == (
            "first"
        )
        assert store.list_objects(CONFIGMAP).objects() == first.objects()
    # Outside the block every listing is fresh.
    store.create(CONFIGMAP, configmap("second"), namespace=ns)
    names = [o["metadata"]["name"] for o in store.list_objects(CONFIGMAP, ns).objects()]
    assert names == ["first", "second"]


def test_list_rejects_a_malformed_continue_token() -> None:
    with pytest.raises(ApiError) as bad:
        store.list_objects(CONFIGMAP, continue_token="not a token")
    assert bad.value.code == 400


# --- compaction ---------------------------------------------------------------------------------


def test_compaction_makes_old_revisions_gone(ns: str) -> None:
    for i in range(3):
        store.create(CONFIGMAP, configmap(f"c{i}"), namespace=ns)
    token = store.list_objects(CONFIGMAP, ns, limit=1).continue_token
    for i in range(5):
        store.update(CONFIGMAP, ns, "c0", configmap("c0", {"i": str(i)}))
    head = store.current_revision()

    floor = store.compact(3)
    assert floor == head - 2
    assert objects.compacted_revision() == floor
    assert sorted(Change.objects.values_list("revision", flat=True)) == [head - 2, head - 1, head]
    # Objects themselves are untouched.
    assert len(store.list_objects(CONFIGMAP, ns).raw) == 3

    with pytest.raises(ApiError) as expired:
        store.list_objects(CONFIGMAP, ns, continue_token=token)
    assert (expired.value.code, expired.value.reason) == (410, "Expired")

    # Compaction never moves back, whatever is asked later.
    assert store.compact(100) == floor
    assert objects.compacted_revision() == floor
