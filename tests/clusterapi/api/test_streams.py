"""The API side of exec, attach and port-forward: routes and subprotocols."""

from __future__ import annotations

from clusterapi.api import streams


def test_stream_paths_and_subprotocols() -> None:
    assert streams.stream_target("/api/v1/namespaces/ns/pods/web/exec") == ("ns", "web", "exec")
    assert streams.stream_target("/api/v1/namespaces/ns/pods/web/portforward") == (
        "ns",
        "web",
        "portforward",
    )
    assert streams.stream_target("/api/v1/namespaces/ns/pods/web/log") is None
    offered = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"]
    assert streams.choose_protocol("exec", offered) == "v5.channel.k8s.io"
    assert streams.choose_protocol("attach", ["v4.channel.k8s.io"]) == "v4.channel.k8s.io"
    assert streams.choose_protocol("exec", ["channel.k8s.io"]) is None
    assert (
        streams.choose_protocol("portforward", ["SPDY/3.1+portforward.k8s.io"])
        == "SPDY/3.1+portforward.k8s.io"
    )
