"""Many clients at once against a live server, over HTTP: compare-and-swap holds under load.

Eight clients increment counters in one ConfigMap the way controllers do (read, modify, PUT
with the read ``resourceVersion``; on 409 re-read and retry): every lost race must be a 409
Conflict, never another status (no 500, no "database is locked"), and the final object must
hold every increment. Sixteen clients creating objects at the same moment must all succeed,
each with its own revision. Run on SQLite and on PostgreSQL (``DATABASE_URL``).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.live import LiveServer

pytestmark = pytest.mark.e2e

CAS_CLIENTS = 8
INCREMENTS_PER_CLIENT = 12
CREATE_CLIENTS = 16
CREATES_PER_CLIENT = 10
NAMESPACE = "load"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


@pytest.fixture(scope="module")
def new_client(live_server_berth: LiveServer) -> Iterator[Callable[[], httpx.Client]]:
    """Makes one HTTP client per simulated API client (its own connection), as the admin."""
    context = ssl.create_default_context(cafile=str(live_server_berth.ca_file))
    headers = {"Authorization": f"Bearer {live_server_berth.admin_token()}"}
    made: list[httpx.Client] = []

    def make() -> httpx.Client:
        http = httpx.Client(
            base_url=live_server_berth.url, verify=context, headers=headers, timeout=60
        )
        made.append(http)
        return http

    setup = make()
    response = setup.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
    assert response.status_code == 201, response.text
    yield make
    for http in made:
        http.close()


def test_compare_and_swap_loses_no_update(new_client: Callable[[], httpx.Client]) -> None:
    setup = new_client()
    created = setup.post(CONFIGMAPS, json={"metadata": {"name": "counter"}, "data": {"n": "0"}})
    assert created.status_code == 201, created.text

    statuses: Counter[int] = Counter()
    unexpected: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CAS_CLIENTS)

    def client_loop(index: int) -> None:
        http = new_client()
        mine = f"c{index}"
        start.wait()
        done = 0
        while done < INCREMENTS_PER_CLIENT:
            current = http.get(f"{CONFIGMAPS}/counter")
            if current.status_code != 200:
                with lock:
                    unexpected.append(f"GET {current.status_code}: {current.text}")
                return
            obj: dict[str, Any] = current.json()
            data = obj.setdefault("data", {})
            data["n"] = str(int(data["n"]) + 1)
            data[mine] = str(int(data.get(mine, "0")) + 1)
            # The body carries the resourceVersion just read: the server swaps only if the
            # object is still at that revision.
            put = http.put(f"{CONFIGMAPS}/counter", json=obj)
            with lock:
                statuses[put.status_code] += 1
            if put.status_code == 200:
                done += 1
            elif put.status_code == 409:
                if put.json().get("reason") != "Conflict":
                    with lock:
                        unexpected.append(f"409 that is not a Conflict: {put.text}")
                    return
            else:
                with lock:
                    unexpected.append(f"PUT {put.status_code}: {put.text}")
                return

    with ThreadPoolExecutor(CAS_CLIENTS) as pool:
        for future in [pool.submit(client_loop, i) for i in range(CAS_CLIENTS)]:
            future.result()

    assert unexpected == []
    assert set(statuses) <= {200, 409}
    assert statuses[200] == CAS_CLIENTS * INCREMENTS_PER_CLIENT
    # With eight clients interleaving read-modify-write, some must have lost a race.
    assert statuses[409] > 0

    final = setup.get(f"{CONFIGMAPS}/counter").json()
    assert final["data"]["n"] == str(CAS_CLIENTS * INCREMENTS_PER_CLIENT)
    for index in range(CAS_CLIENTS):
        assert final["data"][f"c{index}"] == str(INCREMENTS_PER_CLIENT)
    # The change log holds one write per successful PUT and none for a lost race, and each
    # write moved the counter on by exactly one from the state before it.
    history = []
    with setup.stream(
        "GET",
        CONFIGMAPS,
        params={
            "watch": "true",
            "resourceVersion": created.json()["metadata"]["resourceVersion"],
            "fieldSelector": "metadata.name=counter",
            "timeoutSeconds": "2",
        },
    ) as stream:
        for line in stream.iter_lines():
            if line:
                event = json.loads(line)
                history.append((event["type"], int(event["object"]["data"]["n"])))
    total = CAS_CLIENTS * INCREMENTS_PER_CLIENT
    assert history == [("MODIFIED", n) for n in range(1, total + 1)]


def test_parallel_creates_all_succeed(new_client: Callable[[], httpx.Client]) -> None:
    failures: list[str] = []
    versions: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(CREATE_CLIENTS)

    def creator(index: int) -> None:
        http = new_client()
        start.wait()
        for i in range(CREATES_PER_CLIENT):
            body = {
                "metadata": {"name": f"made-{index}-{i}", "labels": {"batch": "parallel"}},
                "data": {"by": str(index)},
            }
            response = http.post(CONFIGMAPS, json=body)
            with lock:
                if response.status_code == 201:
                    versions.append(int(response.json()["metadata"]["resourceVersion"]))
                else:
                    failures.append(f"{response.status_code}: {response.text}")

    with ThreadPoolExecutor(CREATE_CLIENTS) as pool:
        for future in [pool.submit(creator, i) for i in range(CREATE_CLIENTS)]:
            future.result()

    assert failures == []
    total = CREATE_CLIENTS * CREATES_PER_CLIENT
    # Each create took a revision of its own.
    assert len(set(versions)) == total

    listed = new_client().get(CONFIGMAPS, params={"labelSelector": "batch=parallel"})
    assert listed.status_code == 200
    names = {item["metadata"]["name"] for item in listed.json()["items"]}
    assert names == {
        f"made-{c}-{i}" for c in range(CREATE_CLIENTS) for i in range(CREATES_PER_CLIENT)
    }
    assert int(listed.json()["metadata"]["resourceVersion"]) >= max(versions)
