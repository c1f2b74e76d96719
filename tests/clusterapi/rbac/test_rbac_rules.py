"""PolicyRule matching and coverage, case by case from evaluation_helpers.go and the RBAC docs."""

from __future__ import annotations

import pytest

from clusterapi.rbac.rules import (
    Rule,
    allows_non_resource,
    allows_resource,
    breakdown,
    compact_rules,
    compact_string,
    covers,
    rules_from_json,
)


def test_rule_round_trips_through_json_in_served_field_order() -> None:
    data = {
        "verbs": ["get"],
        "apiGroups": [""],
        "resources": ["pods"],
        "resourceNames": ["x"],
    }
    rule = Rule.from_json(data)
    assert rule == Rule.of(["get"], groups=[""], resources=["pods"], names=["x"])
    assert list(rule.to_json()) == ["verbs", "apiGroups", "resources", "resourceNames"]
    assert rule.to_json() == data


def test_malformed_rules_read_as_granting_nothing() -> None:
    assert rules_from_json(None) == ()
    assert rules_from_json([{"verbs": "get", "resources": [1, "pods"]}, "junk"]) == (
        Rule(resources=("pods",)),
        Rule(),
    )


@pytest.mark.parametrize(
    ("rule", "request_", "allowed"),
    [
        (Rule.of(["get"], groups=[""], resources=["pods"]), ("get", "", "pods", "", ""), True),
        (
            Rule.of(["*"], groups=["*"], resources=["*"]),
            ("delete", "apps", "x", "scale", "n"),
            True,
        ),
        (Rule.of(["get"], groups=[""], resources=["pods"]), ("list", "", "pods", "", ""), False),
        (Rule.of(["get"], groups=["apps"], resources=["pods"]), ("get", "", "pods", "", ""), False),
        # A bare resource does not reach its subresources ...
        (Rule.of(["get"], groups=[""], resources=["pods"]), ("get", "", "pods", "log", "p"), False),
        (
            Rule.of(["get"], groups=[""], resources=["pods/log"]),
            ("get", "", "pods", "log", ""),
            True,
        ),
        # ... "*/scale" reaches the scale subresource of anything ...
        (
            Rule.of(["get"], groups=["*"], resources=["*/scale"]),
            ("get", "apps", "deployments", "scale", ""),
            True,
        ),
        (
            Rule.of(["get"], groups=["*"], resources=["*/scale"]),
            ("get", "apps", "deployments", "", ""),
            False,
        ),
        (
            Rule.of(["get"], groups=["*"], resources=["*/scale"]),
            ("get", "", "pods", "scalex", ""),
            False,
        ),
        # ... and "pods/*" only a subresource literally named "*".
        (
            Rule.of(["get"], groups=[""], resources=["pods/*"]),
            ("get", "", "pods", "log", ""),
            False,
        ),
        (Rule.of(["get"], groups=[""], resources=["pods/*"]), ("get", "", "pods", "*", ""), True),
        (Rule.of(["get"], groups=[""], resources=["*"]), ("get", "", "pods", "exec", ""), True),
        # resourceNames: empty means any name; otherwise the name must be listed.
        (
            Rule.of(["get"], groups=[""], resources=["pods"], names=["a"]),
            ("get", "", "pods", "", "a"),
            True,
        ),
        (
            Rule.of(["get"], groups=[""], resources=["pods"], names=["a"]),
            ("get", "", "pods", "", "b"),
            False,
        ),
        (
            Rule.of(["list"], groups=[""], resources=["pods"], names=["a"]),
            ("list", "", "pods", "", ""),
            False,
        ),
        # A rule that only lists URLs grants no resources.
        (Rule.of(["*"], urls=["*"]), ("get", "", "pods", "", ""), False),
    ],
)
def test_resource_rules_match_as_upstream(
    rule: Rule, request_: tuple[str, str, str, str, str], allowed: bool
) -> None:
    assert allows_resource(rule, *request_) is allowed


@pytest.mark.parametrize(
    ("urls", "path", "allowed"),
    [
        (["/healthz"], "/healthz", True),
        (["/healthz"], "/healthz/ping", False),
        (["/healthz/*"], "/healthz/ping", True),
        (["/healthz/*"], "/healthz", False),
        (["/healthz*"], "/healthzz", True),
        (["/api**"], "/apis", True),
        (["*"], "/anything/at/all", True),
        (["/metrics"], "/metrics/", False),
    ],
)
def test_non_resource_urls_match_exactly_or_by_trailing_star_prefix(
    urls: list[str], path: str, allowed: bool
) -> None:
    assert allows_non_resource(Rule.of(["get"], urls=urls), "get", path) is allowed
    assert allows_non_resource(Rule.of(["post"], urls=urls), "get", path) is False


def test_a_resource_rule_grants_no_paths() -> None:
    assert not allows_non_resource(Rule.of(["*"], groups=["*"], resources=["*"]), "get", "/healthz")


def test_breakdown_makes_one_rule_per_group_resource_verb_and_name() -> None:
    rule = Rule.of(["get", "list"], groups=["", "apps"], resources=["pods"], names=["a", "b"])
    parts = breakdown(rule)
    assert len(parts) == 8
    assert parts[0] == Rule.of(["get"], groups=[""], resources=["pods"], names=["a"])
    assert breakdown(Rule.of(["get", "post"], urls=["/a", "/b"])) == [
        Rule.of(["get"], urls=["/a"]),
        Rule.of(["post"], urls=["/a"]),
        Rule.of(["get"], urls=["/b"]),
        Rule.of(["post"], urls=["/b"]),
    ]


@pytest.mark.parametrize(
    ("owner", "servant", "covered"),
    [
        (
            [Rule.of(["*"], groups=["*"], resources=["*"])],
            [Rule.of(["get"], groups=[""], resources=["pods"])],
            True,
        ),
        (
            [Rule.of(["get"], groups=[""], resources=["pods"])],
            [Rule.of(["get", "list"], groups=[""], resources=["pods"])],
            False,
        ),
        # Several owner rules together cover a servant rule, one atomic piece each.
        (
            [
                Rule.of(["get"], groups=[""], resources=["pods"]),
                Rule.of(["list"], groups=[""], resources=["pods"]),
            ],
            [Rule.of(["get", "list"], groups=[""], resources=["pods"])],
            True,
        ),
        (
            [Rule.of(["get"], groups=["*"], resources=["*/scale"])],
            [Rule.of(["get"], groups=["apps"], resources=["deployments/scale"])],
            True,
        ),
        (
            [Rule.of(["get"], groups=[""], resources=["pods"])],
            [Rule.of(["get"], groups=[""], resources=["pods/log"])],
            False,
        ),
        # An owner limited to names covers those names, never the unrestricted rule.
        (
            [Rule.of(["get"], groups=[""], resources=["pods"], names=["a"])],
            [Rule.of(["get"], groups=[""], resources=["pods"], names=["a"])],
            True,
        ),
        (
            [Rule.of(["get"], groups=[""], resources=["pods"], names=["a"])],
            [Rule.of(["get"], groups=[""], resources=["pods"])],
            False,
        ),
        (
            [Rule.of(["get"], groups=[""], resources=["pods"])],
            [Rule.of(["get"], groups=[""], resources=["pods"], names=["a"])],
            True,
        ),
        (
            [Rule.of(["get"], urls=["/healthz/*"])],
            [Rule.of(["get"], urls=["/healthz/ready"])],
            True,
        ),
        ([Rule.of(["get"], urls=["/healthz"])], [Rule.of(["get"], urls=["/healthz/*"])], False),
        (
            [Rule.of(["*"], groups=["*"], resources=["*"])],
            [Rule.of(["get"], urls=["/metrics"])],
            False,
        ),
        ([], [], True),
    ],
)
def test_covers_as_the_escalation_check_does(
    owner: list[Rule], servant: list[Rule], covered: bool
) -> None:
    assert covers(owner, servant)[0] is covered


def test_missing_permissions_are_compacted_and_rendered_like_go() -> None:
    _, missing = covers(
        [Rule.of(["get"], groups=[""], resources=["pods"])],
        [
            Rule.of(["get", "create", "delete"], groups=[""], resources=["pods"]),
            Rule.of(["get"], groups=[""], resources=["secrets"], names=["token"]),
            Rule.of(["get"], urls=["/metrics"]),
        ],
    )
    rendered = sorted(compact_string(r) for r in compact_rules(missing))
    assert rendered == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["create" "delete"]}',
        '{APIGroups:[""], Resources:["secrets"], ResourceNames:["token"], Verbs:["get"]}',
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}',
    ]


def test_compact_string_quotes_like_go_percent_q() -> None:
    assert (
        compact_string(Rule.of(["get"], groups=['we"ird']))
        == '{APIGroups:["we\\"ird"], Verbs:["get"]}'
    )
