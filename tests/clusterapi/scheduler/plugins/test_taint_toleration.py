"""TaintToleration: NoSchedule/NoExecute taints filter; PreferNoSchedule taints score."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi.scheduler.framework import Code, PodInfo
from clusterapi.scheduler.plugins.taint_toleration import ERR_REASON_NOT_MATCH, new
from tests.clusterapi.scheduler.helpers import info, node, pod, state

NO_SCHEDULE = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("taints", "tolerations", "fits"),
    [
        pytest.param([], [], True, id="untainted-node"),
        pytest.param([NO_SCHEDULE], [], False, id="untolerated-noschedule"),
        pytest.param(
            [{**NO_SCHEDULE, "effect": "NoExecute"}], [], False, id="untolerated-noexecute"
        ),
        pytest.param(
            [{**NO_SCHEDULE, "effect": "PreferNoSchedule"}], [], True, id="prefer-is-no-filter"
        ),
        pytest.param(
            [NO_SCHEDULE],
            [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            True,
            id="equal-toleration",
        ),
        pytest.param(
            [NO_SCHEDULE],
            [{"key": "dedicated", "operator": "Equal", "value": "cpu"}],
            False,
            id="equal-with-another-value",
        ),
        pytest.param(
            [NO_SCHEDULE], [{"key": "dedicated", "operator": "Exists"}], True, id="exists-any-value"
        ),
        pytest.param([NO_SCHEDULE], [{"operator": "Exists"}], True, id="empty-key-exists-all"),
        pytest.param(
            [NO_SCHEDULE],
            [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}],
            False,
            id="other-effect",
        ),
    ],
)
def test_filter(taints: list[Any], tolerations: list[Any], fits: bool) -> None:
    status = new({}).filter(
        state(), PodInfo(pod("p", tolerations=tolerations)), info(node("n", taints=taints))
    )
    if fits:
        assert status is None
    else:
        assert status is not None
        assert status.reasons == (ERR_REASON_NOT_MATCH,)
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_score_prefers_fewer_untolerated_prefer_no_schedule_taints() -> None:
    plugin = new({})
    prefer = [
        {"key": "a", "value": "1", "effect": "PreferNoSchedule"},
        {"key": "b", "value": "1", "effect": "PreferNoSchedule"},
    ]
    nodes = {
        "clean": info(node("clean")),
        "one": info(node("one", taints=prefer[:1])),
        "two": info(node("two", taints=prefer)),
        "tolerated": info(node("tolerated", taints=prefer[1:])),
    }
    p = PodInfo(pod("p", tolerations=[{"key": "b", "operator": "Exists"}]))
    s = state()
    plugin.pre_score(s, p, list(nodes.values()))
    raw = {name: plugin.score(s, p, n) for name, n in nodes.items()}
    assert raw == {"clean": 0, "one": 1, "two": 1, "tolerated": 0}
    plugin.normalize(s, p, raw)
    assert raw == {"clean": 100, "one": 0, "two": 0, "tolerated": 100}


def test_score_is_100_everywhere_without_prefer_taints() -> None:
    plugin = new({})
    scores = {"a": 0, "b": 0}
    plugin.normalize(state(), PodInfo(pod("p")), scores)
    assert scores == {"a": 100, "b": 100}
