"""The change feed (``clusterapi.core.watch``): what reaches a subscriber, and when rows are
skipped because nobody listens."""

from __future__ import annotations

import asyncio

import pytest

from clusterapi import store
from clusterapi.core import watch
from clusterapi.resources import KINDS

CONFIGMAP = next(k for k in KINDS if k.kind == "ConfigMap")
NAMESPACE = next(k for k in KINDS if k.kind == "Namespace")

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quiet_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "notify", lambda: None)  # the test drains by hand


def feed_at_latest() -> watch.ChangeFeed:
    feed = watch.ChangeFeed()
    feed._position = watch._latest_revision()  # as start() does, without the thread
    return feed


def configmap(name: str) -> None:
    store.create(CONFIGMAP, {"metadata": {"name": name}, "data": {}}, namespace="feed")


def test_without_subscribers_the_feed_moves_past_rows_without_reading_them() -> None:
    store.create(NAMESPACE, {"metadata": {"name": "feed"}})
    feed = feed_at_latest()
    configmap("a")
    configmap("b")
    feed._drain()
    assert feed.position == store.current_revision()


def test_a_subscriber_gets_the_changes_after_its_start_and_no_others() -> None:
    store.create(NAMESPACE, {"metadata": {"name": "feed"}})
    feed = feed_at_latest()
    configmap("before")
    feed._drain()  # nobody listens yet: passed over
    loop = asyncio.new_event_loop()

    async def subscribe() -> watch.Subscription:
        return feed.subscribe("", "configmaps")

    try:
        sub = loop.run_until_complete(subscribe())
        configmap("after")
        feed._drain()
        loop.run_until_complete(asyncio.sleep(0))  # queued through call_soon_threadsafe
    finally:
        loop.close()
    events = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        assert event is not None and event.revision > sub.start
        events.append(event.name)
    sub.close()
    # "before" was passed over before the subscription: a watch replays it from the
    # database (up to ``sub.start``); the queue holds what came after.
    assert events == ["after"]
