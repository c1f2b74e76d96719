"""The clusterrole-aggregation controller (clusterroleaggregation_controller.go)."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi import store
from clusterapi.core.selectors import SelectorError
from clusterapi.rbac import aggregation
from clusterapi.rbac.rules import Rule
from tests.clusterapi.rbac.helpers import cluster_role, kind_of, put, rule, stored

Obj = dict[str, Any]
PODS = rule(["get"], [""], ["pods"])
SECRETS = rule(["get"], [""], ["secrets"])
DEPLOYMENTS = rule(["get"], ["apps"], ["deployments"])


def aggregated(name: str, *selectors: Obj) -> Obj:
    obj = cluster_role(name)
    obj["aggregationRule"] = {"clusterRoleSelectors": list(selectors)}
    return obj


def test_rules_are_gathered_per_selector_in_name_order_each_once() -> None:
    roles = [
        aggregated("agg", {"matchLabels": {"x": "1"}}, {"matchLabels": {"y": "1"}}),
        cluster_role("b", SECRETS, PODS, labels={"x": "1"}),
        cluster_role("a", PODS, labels={"x": "1", "y": "1"}),
        cluster_role("c", DEPLOYMENTS, labels={"y": "1"}),
        cluster_role("unlabelled", rule(["*"], ["*"], ["*"])),
    ]
    rules = aggregation.aggregate_rules(roles[0], roles)
    assert rules == [Rule.from_json(PODS), Rule.from_json(SECRETS), Rule.from_json(DEPLOYMENTS)]


def test_a_role_never_aggregates_itself_and_plain_roles_are_not_aggregated() -> None:
    selfish = aggregated("agg", {"matchLabels": {"x": "1"}})
    selfish["metadata"]["labels"] = {"x": "1"}
    selfish["rules"] = [PODS]
    assert aggregation.aggregate_rules(selfish, [selfish]) == []
    assert aggregation.aggregate_rules(cluster_role("plain", PODS), []) is None


def test_match_expressions_select_too_and_invalid_selectors_raise() -> None:
    agg = aggregated(
        "agg", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}
    )
    roles = [
        agg,
        cluster_role("one", PODS, labels={"tier": "b"}),
        cluster_role("two", SECRETS, labels={"tier": "c"}),
    ]
    assert aggregation.aggregate_rules(agg, roles) == [Rule.from_json(PODS)]
    broken = aggregated("agg", {"matchExpressions": [{"key": "tier", "operator": "Near"}]})
    with pytest.raises(SelectorError):
        aggregation.aggregate_rules(broken, roles)


@pytest.mark.django_db
def test_reconcile_writes_the_union_only_when_it_changes() -> None:
    put(aggregated("agg", {"matchLabels": {"x": "1"}}))
    put(cluster_role("a", PODS, labels={"x": "1"}))
    assert aggregation.reconcile_cluster_role("agg")
    first = stored("ClusterRole", "agg")
    assert first["rules"] == [PODS]
    assert not aggregation.reconcile_cluster_role("agg")
    assert (
        stored("ClusterRole", "agg")["metadata"]["resourceVersion"]
        == first["metadata"]["resourceVersion"]
    )


@pytest.mark.django_db
def test_reconcile_all_follows_roles_that_aggregate_aggregated_roles() -> None:
    put(aggregated("top", {"matchLabels": {"to-top": "1"}}))
    middle = aggregated("middle", {"matchLabels": {"to-middle": "1"}})
    middle["metadata"]["labels"] = {"to-top": "1"}
    put(middle)
    put(cluster_role("leaf", DEPLOYMENTS, labels={"to-middle": "1"}))
    assert aggregation.reconcile_all() >= 2
    assert stored("ClusterRole", "top")["rules"] == [DEPLOYMENTS]
    # A label removed from the leaf empties both again.
    leaf = stored("ClusterRole", "leaf")
    leaf["metadata"]["labels"] = {}
    store.update(kind_of("ClusterRole"), "", "leaf", leaf)
    aggregation.reconcile_all()
    assert stored("ClusterRole", "middle")["rules"] == []
    assert stored("ClusterRole", "top")["rules"] == []
    assert aggregation.reconcile_all() == 0


@pytest.mark.django_db
def test_reconcile_of_a_missing_or_invalid_role_changes_nothing() -> None:
    assert not aggregation.reconcile_cluster_role("nothing-here")
    put(
        aggregated(
            "bad", {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}]}
        )
    )
    assert not aggregation.reconcile_cluster_role("bad")
    assert aggregation.reconcile("", "anything") is None
