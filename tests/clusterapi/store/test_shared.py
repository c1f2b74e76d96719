"""Lists whose decoded objects are kept between calls (``clusterapi.store.shared``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clusterapi import controllers, store
from clusterapi.resources import registered as kind
from clusterapi.store import shared

pytestmark = pytest.mark.django_db

CONFIGMAP = kind("v1", "ConfigMap")
NAMESPACE = kind("v1", "Namespace")
Obj = dict[str, Any]


@pytest.fixture(autouse=True)
def setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(controllers, "wake", lambda *args: None)
    shared.clear()
    store.create(NAMESPACE, {"metadata": {"name": "team"}})
    yield
    shared.clear()


def configmap(name: str, value: str) -> Obj:
    return {"metadata": {"name": name}, "data": {"v": value}}


def names_and_values(objects: list[Obj]) -> list[tuple[str, str]]:
    return [(o["metadata"]["name"], o["data"]["v"]) for o in objects]


def test_a_shared_list_follows_creates_updates_and_deletes() -> None:
    for name in ("b", "a", "c"):
        store.create(CONFIGMAP, configmap(name, "1"), namespace="team")
    first = store.list_shared(CONFIGMAP, "team")
    assert names_and_values(first) == [("a", "1"), ("b", "1"), ("c", "1")]
    assert first == store.list_objects(CONFIGMAP, "team").objects()

    def change(obj: Obj) -> Obj:
        obj["data"]["v"] = "2"
        return obj

    store.guaranteed_update(CONFIGMAP, "team", "b", change)
    store.delete(CONFIGMAP, "team", "c")
    store.create(CONFIGMAP, configmap("d", "1"), namespace="team")
    second = store.list_shared(CONFIGMAP, "team")
    assert names_and_values(second) == [("a", "1"), ("b", "2"), ("d", "1")]
    assert second == store.list_objects(CONFIGMAP, "team").objects()
    # An object that did not change is the one decoded before, not decoded again.
    assert second[0] is first[0]
    assert second[1] is not first[1]


def test_an_object_replaced_under_a_reused_revision_is_read_again() -> None:
    """A database rolled back under the cache (tests) hands out revisions again: an object
    at a revision the cache already passed is still read when its uid or revision differ."""
    store.create(CONFIGMAP, configmap("a", "1"), namespace="team")
    assert names_and_values(store.list_shared(CONFIGMAP, "team")) == [("a", "1")]
    store.delete(CONFIGMAP, "team", "a")
    store.create(CONFIGMAP, configmap("a", "2"), namespace="team")
    for scope in shared._scopes.values():
        scope.since = 10**9  # as if those revisions had been seen already
    assert names_and_values(store.list_shared(CONFIGMAP, "team")) == [("a", "2")]


def test_the_least_recently_listed_namespaces_are_dropped_beyond_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared, "MAX_OBJECTS", 2)
    store.create(NAMESPACE, {"metadata": {"name": "other"}})
    for ns in ("team", "other"):
        store.create(CONFIGMAP, configmap("x", ns), namespace=ns)
        store.create(CONFIGMAP, configmap("y", ns), namespace=ns)
    store.list_shared(CONFIGMAP, "team")
    store.list_shared(CONFIGMAP, "other")
    assert [key[2] for key in shared._scopes] == ["other"]
    assert names_and_values(store.list_shared(CONFIGMAP, "team")) == [("x", "team"), ("y", "team")]
