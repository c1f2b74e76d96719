"""NodePorts: host ports conflict per address and protocol, 0.0.0.0 with everything."""

from __future__ import annotations

from typing import Any

import pytest

from clusterapi.scheduler.framework import Code, PodInfo
from clusterapi.scheduler.plugins.node_ports import ERR_REASON, new
from tests.clusterapi.scheduler.helpers import container, info, node, pod, state


def with_port(name: str, port: int, ip: str = "", protocol: str = "TCP", **kw: Any) -> dict:
    spec: dict[str, Any] = {"containerPort": 80, "hostPort": port, "protocol": protocol}
    if ip:
        spec["hostIP"] = ip
    return pod(name, containers=[container(ports=[spec])], **kw)


@pytest.mark.parametrize(
    ("existing", "incoming", "fits"),
    [
        pytest.param({"port": 80}, {"port": 81}, True, id="different-ports"),
        pytest.param({"port": 80}, {"port": 80}, False, id="same-port-any-address"),
        pytest.param({"port": 80}, {"port": 80, "protocol": "UDP"}, True, id="other-protocol"),
        pytest.param(
            {"port": 80, "ip": "10.0.0.1"}, {"port": 80, "ip": "10.0.0.2"}, True, id="other-ip"
        ),
        pytest.param(
            {"port": 80, "ip": "10.0.0.1"}, {"port": 80, "ip": "10.0.0.1"}, False, id="same-ip"
        ),
        pytest.param(
            {"port": 80, "ip": "10.0.0.1"}, {"port": 80}, False, id="wildcard-vs-specific"
        ),
        pytest.param(
            {"port": 80}, {"port": 80, "ip": "10.0.0.1"}, False, id="specific-vs-wildcard"
        ),
    ],
)
def test_host_port_conflicts(existing: dict, incoming: dict, fits: bool) -> None:
    plugin = new({})
    n = info(node("n"), [with_port("old", node_name="n", **existing)])
    p = PodInfo(with_port("new", **incoming))
    s = state()
    assert plugin.pre_filter(s, p) is None
    status = plugin.filter(s, p, n)
    if fits:
        assert status is None
    else:
        assert status is not None and status.reasons == (ERR_REASON,)
        assert status.code == Code.UNSCHEDULABLE  # preemption can free a port


def test_pods_without_host_ports_skip_the_plugin() -> None:
    status = new({}).pre_filter(state(), PodInfo(pod("p")))
    assert status is not None and status.code == Code.SKIP
