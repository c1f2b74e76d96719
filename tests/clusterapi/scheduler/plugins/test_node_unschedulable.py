"""NodeUnschedulable: cordoned nodes reject pods that do not tolerate the cordon."""

from __future__ import annotations

import pytest

from clusterapi.scheduler.framework import Code, PodInfo
from clusterapi.scheduler.plugins.node_unschedulable import ERR_REASON_UNSCHEDULABLE, new
from tests.clusterapi.scheduler.helpers import info, node, pod, state

CORDON_TOLERATION = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("unschedulable", "tolerations", "fits"),
    [
        pytest.param(False, [], True, id="schedulable-node-takes-any-pod"),
        pytest.param(True, [], False, id="cordoned-node-rejects-a-plain-pod"),
        pytest.param(
            True, [{**CORDON_TOLERATION, "operator": "Exists"}], True, id="cordon-tolerated"
        ),
        pytest.param(True, [{"operator": "Exists"}], True, id="tolerate-everything"),
        pytest.param(
            True,
            [
                {
                    "key": "node.kubernetes.io/unschedulable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                }
            ],
            False,
            id="wrong-effect-is-not-enough",
        ),
    ],
)
def test_cordoned_nodes(unschedulable: bool, tolerations: list, fits: bool) -> None:
    plugin = new({})
    status = plugin.filter(
        state(),
        PodInfo(pod("p", tolerations=tolerations)),
        info(node("n", unschedulable=unschedulable)),
    )
    if fits:
        assert status is None
    else:
        assert status is not None
        assert status.reasons == (ERR_REASON_UNSCHEDULABLE,)
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
