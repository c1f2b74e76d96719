"""NodeAffinity: nodeSelector and required terms filter; preferred terms score."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi.scheduler.framework import Code, PodInfo, Status
from clusterapi.scheduler.plugins.node_affinity import ERR_REASON_POD, new
from tests.clusterapi.scheduler.helpers import info, node, pod, state

LABELS = {"zone": "a", "disk": "ssd", "generation": "5"}


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


@pytest.mark.parametrize(
    ("spec", "fits"),
    [
        pytest.param({}, True, id="no-constraints"),
        pytest.param({"nodeSelector": {"zone": "a"}}, True, id="selector-matches"),
        pytest.param({"nodeSelector": {"zone": "b"}}, False, id="selector-mismatch"),
        pytest.param({"nodeSelector": {"rack": "1"}}, False, id="selector-missing-label"),
        pytest.param({"affinity": required(expr("zone", "In", "a", "b"))}, True, id="in"),
        pytest.param({"affinity": required(expr("zone", "NotIn", "a"))}, False, id="notin"),
        pytest.param({"affinity": required(expr("rack", "NotIn", "1"))}, True, id="notin-absent"),
        pytest.param({"affinity": required(expr("disk", "Exists"))}, True, id="exists"),
        pytest.param({"affinity": required(expr("disk", "DoesNotExist"))}, False, id="dne"),
        pytest.param({"affinity": required(expr("generation", "Gt", "4"))}, True, id="gt"),
        pytest.param({"affinity": required(expr("generation", "Lt", "4"))}, False, id="lt"),
        pytest.param(
            {"affinity": required(expr("zone", "In", "b"), expr("disk", "In", "ssd"))},
            True,
            id="terms-are-ored",
        ),
        pytest.param(
            {
                "affinity": required(
                    {
                        "matchExpressions": [
                            {"key": "zone", "operator": "In", "values": ["a"]},
                            {"key": "disk", "operator": "In", "values": ["hdd"]},
                        ]
                    }
                )
            },
            False,
            id="expressions-are-anded",
        ),
        pytest.param({"affinity": required({})}, False, id="empty-term-selects-nothing"),
        pytest.param(
            {
                "affinity": required(
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}
                )
            },
            True,
            id="match-fields-name",
        ),
        pytest.param(
            {"nodeSelector": {"zone": "b"}, "affinity": required(expr("zone", "In", "a"))},
            False,
            id="selector-and-affinity-both-apply",
        ),
    ],
)
def test_filter(spec: dict[str, Any], fits: bool) -> None:
    plugin = new({})
    p = PodInfo(pod("p", **spec))
    s = state()
    pre = plugin.pre_filter(s, p)
    if pre is not None and pre.code == Code.SKIP:
        assert fits
        return
    status: Status | None = plugin.filter(s, p, info(node("n", labels=LABELS)))
    if fits:
        assert status is None
    else:
        assert status is not None and status.reasons == (ERR_REASON_POD,)
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_preferred_terms_score_by_weight_and_normalize_to_100() -> None:
    plugin = new({})
    affinity = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": expr("zone", "In", "a")},
                {"weight": 30, "preference": expr("disk", "In", "ssd")},
            ]
        }
    }
    p = PodInfo(pod("p", affinity=affinity))
    nodes = {
        "both": info(node("both", labels={"zone": "a", "disk": "ssd"})),
        "zone": info(node("zone", labels={"zone": "a"})),
        "none": info(node("none")),
    }
    s = state()
    assert plugin.pre_score(s, p, list(nodes.values())) is None
    raw = {name: plugin.score(s, p, n) for name, n in nodes.items()}
    assert raw == {"both": 40, "zone": 10, "none": 0}
    plugin.normalize(s, p, raw)
    assert raw == {"both": 100, "zone": 25, "none": 0}


def test_no_preferred_terms_skips_scoring() -> None:
    status = new({}).pre_score(state(), PodInfo(pod("p")), [])
    assert status is not None and status.code == Code.SKIP
