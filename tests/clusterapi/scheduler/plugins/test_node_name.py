"""NodeName: a pod naming a node fits only that node."""

from __future__ import annotations

import pytest

from clusterapi.scheduler.framework import PodInfo
from clusterapi.scheduler.plugins.node_name import ERR_REASON, new
from tests.clusterapi.scheduler.helpers import info, node, pod, state


@pytest.mark.parametrize(
    ("requested", "candidate", "fits"),
    [
        pytest.param("", "n1", True, id="no-node-name-fits-anywhere"),
        pytest.param("n1", "n1", True, id="the-named-node-fits"),
        pytest.param("n1", "n2", False, id="another-node-does-not"),
    ],
)
def test_node_name(requested: str, candidate: str, fits: bool) -> None:
    spec = pod("p")
    spec["spec"]["nodeName"] = requested
    status = new({}).filter(state(), PodInfo(spec), info(node(candidate)))
    assert (status is None) == fits
    if not fits:
        assert status is not None and status.reasons == (ERR_REASON,)
