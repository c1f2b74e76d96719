"""PodDisruptionBudgets: the disruption controller's status, and eviction through the API
(``POST pods/<name>/eviction``, what ``kubectl drain`` does) honouring it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from clusterapi import store
from clusterapi.api import views
from clusterapi.api.requests import resolve
from clusterapi.api.status import error_response
from clusterapi.controllers import disruption
from clusterapi.store.errors import ApiError
from tests.clusterapi.scheduler.conftest import NS, PDB, POD, condition, get_pod, kind

Obj = dict[str, Any]
APP = {"app": "web"}


@pytest.fixture
def running(add_node: Callable[..., Obj], add_pod: Callable[..., Obj]) -> Callable[..., Obj]:
    """Create a pod bound to a node and reported Running and Ready (the node agent's part)."""
    add_node("n1")

    def make(
        name: str, *, ready: bool = True, labels: dict[str, str] | None = None, **kw: Any
    ) -> Obj:
        add_pod(name, labels=APP if labels is None else labels, node_name="n1", **kw)

        def report(obj: Obj) -> Obj:
            obj["status"]["phase"] = "Running"
            obj["status"]["conditions"] = [
                {"type": "Ready", "status": "True" if ready else "False"}
            ]
            return obj

        return store.guaranteed_update(POD, NS, name, report, subresource="status").obj

    return make


def budget(name: str = "web", **spec: Any) -> Obj:
    spec.setdefault("selector", {"matchLabels": APP})
    return store.create(PDB, {"metadata": {"name": name}, "spec": spec}, namespace=NS).obj


def status_of(name: str = "web") -> Obj:
    disruption.reconcile(NS, name)
    return store.get(PDB, NS, name)["status"]


def evict(name: str, body: Obj | None = None, query: str = "") -> tuple[int, Obj]:
    body = (
        body
        if body is not None
        else {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": NS},
        }
    )
    path = f"/api/v1/namespaces/{NS}/pods/{name}/eviction{query}"
    request = RequestFactory().post(path, data=orjson.dumps(body), content_type="application/json")
    target = resolve("", "v1", f"namespaces/{NS}/pods/{name}/eviction")
    try:
        response = views.handle(request, target)
    except ApiError as exc:
        response = error_response(exc)
    assert isinstance(response, HttpResponse)  # not streamed: it has a body
    return response.status_code, orjson.loads(response.content)


# --- the controller -------------------------------------------------------------------------


def test_status_with_an_integer_min_available(running: Callable[..., Obj]) -> None:
    for i in range(3):
        running(f"web-{i}")
    running("unready", ready=False)
    running("other", labels={"app": "other"})
    budget(minAvailable=2)
    status = status_of()
    assert {
        k: status[k]
        for k in (
            "currentHealthy",
            "desiredHealthy",
            "disruptionsAllowed",
            "expectedPods",
            "observedGeneration",
        )
    } == {
        "currentHealthy": 3,
        "desiredHealthy": 2,
        "disruptionsAllowed": 1,
        "expectedPods": 4,
        "observedGeneration": 1,
    }
    allowed = condition({"status": status}, "DisruptionAllowed")
    assert allowed is not None and (allowed["status"], allowed["reason"]) == (
        "True",
        "SufficientPods",
    )


def test_percentages_and_max_unavailable_count_the_controllers_scale(
    running: Callable[..., Obj],
) -> None:
    rs = store.create(
        kind("apps/v1", "ReplicaSet"),
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": APP},
                "template": {
                    "metadata": {"labels": APP},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        },
        namespace=NS,
    ).obj
    owner = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web",
            "uid": rs["metadata"]["uid"],
            "controller": True,
        }
    ]
    for i in range(3):
        pod = running(f"web-{i}")

        def own(obj: Obj) -> Obj:
            obj["metadata"]["ownerReferences"] = owner
            return obj

        store.guaranteed_update(POD, NS, pod["metadata"]["name"], own)
    budget("max", maxUnavailable="25%")
    status = status_of("max")
    # 4 expected, 25% of 4 rounded up = 1 may be unavailable: 3 desired, 3 healthy.
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (
        4,
        3,
        0,
    )
    budget("min", minAvailable="50%", selector={"matchLabels": APP})
    status = status_of("min")
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (
        4,
        2,
        1,
    )


def test_pods_wake_the_budgets_selecting_them(running: Callable[..., Obj]) -> None:
    pod = running("web-0")
    budget(minAvailable=1)
    budget("everything", selector={})
    budget("nothing", selector=None)
    keys = disruption.CONTROLLER.keys_for("Pod", pod)
    assert sorted(keys) == [(NS, "everything"), (NS, "web")]


# --- eviction -------------------------------------------------------------------------------


def test_eviction_spends_the_budget_then_answers_429(running: Callable[..., Obj]) -> None:
    for i in range(3):
        running(f"web-{i}")
    budget(minAvailable=2)
    status_of()
    code, body = evict("web-0")
    assert code == 201 and body["status"] == "Success"
    evicted = get_pod("web-0")
    assert evicted["metadata"].get("deletionTimestamp")  # graceful: its node agent stops it
    target = condition(evicted, "DisruptionTarget")
    assert target is not None and target["reason"] == "EvictionByEvictionAPI"
    pdb = store.get(PDB, NS, "web")["status"]
    assert pdb["disruptionsAllowed"] == 0 and "web-0" in pdb["disruptedPods"]

    code, body = evict("web-1")
    assert code == 429
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 3 currently",
        }
    ]
    assert "deletionTimestamp" not in get_pod("web-1")["metadata"]
    # The controller now counts the evicted pod out.
    assert status_of()["currentHealthy"] == 2


def test_a_budget_not_yet_processed_answers_429_with_retry_after(
    running: Callable[..., Obj],
) -> None:
    running("web-0")
    budget(minAvailable=0)
    code, body = evict("web-0")
    assert code == 429
    assert body["details"]["retryAfterSeconds"] == 10
    assert body["details"]["causes"][0]["message"] == (
        "The disruption budget web is still being processed by the server."
    )


def test_pods_without_budget_pending_or_unready_pods_go(
    running: Callable[..., Obj], add_pod: Callable[..., Obj]
) -> None:
    running("free", labels={"app": "free"})
    assert evict("free")[0] == 201
    add_pod("pending", labels=APP)  # not running yet: no budget applies
    budget(minAvailable=5)
    status_of()
    assert evict("pending")[0] == 201
    with pytest.raises(ApiError):
        get_pod("pending")  # unbound pods go at once
    for i in range(2):
        running(f"web-{i}")
    running("sick", ready=False)
    status_of()
    # Unready while the application is short of healthy pods: IfHealthyBudget refuses.
    assert evict("sick")[0] == 429
    store.guaranteed_update(
        PDB,
        NS,
        "web",
        lambda o: {**o, "spec": {**o["spec"], "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
    )
    status_of()
    assert evict("sick")[0] == 201


def test_delete_options_and_dry_run_are_honoured(running: Callable[..., Obj]) -> None:
    running("web-0")
    running("web-1")
    budget(maxUnavailable=1)
    status_of()
    code, _ = evict("web-0", query="?dryRun=All")
    assert code == 201
    assert "deletionTimestamp" not in get_pod("web-0")["metadata"]
    # Pods without a controller count for nothing with maxUnavailable (as upstream): 2 allowed.
    assert store.get(PDB, NS, "web")["status"]["disruptionsAllowed"] == 2
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-0"},
        "deleteOptions": {"gracePeriodSeconds": 0},
    }
    assert evict("web-0", body)[0] == 201
    with pytest.raises(ApiError):
        get_pod("web-0")  # no grace period: gone at once


def test_eviction_errors(running: Callable[..., Obj]) -> None:
    code, body = evict("nobody")
    assert (code, body["reason"]) == (404, "NotFound")
    running("web-0")
    mismatch = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}
    code, body = evict("web-0", mismatch)
    assert (code, body["message"]) == (400, "name in URL does not match name in Eviction object")
    budget("one", minAvailable=0)
    budget("two", minAvailable=0)
    code, body = evict("web-0")
    assert code == 500
    assert body["message"] == (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
        "not support."
    )


def test_budget_validation(cluster: Obj) -> None:
    with pytest.raises(ApiError) as both:
        budget(minAvailable=1, maxUnavailable=1)
    assert both.value.code == 422
    assert "minAvailable and maxUnavailable cannot be both set" in both.value.message
    with pytest.raises(ApiError) as percent:
        budget(minAvailable="150%")
    assert "must not be greater than 100%" in percent.value.message
    fresh = budget(minAvailable=1)
    assert fresh["status"]["disruptionsAllowed"] == 0
