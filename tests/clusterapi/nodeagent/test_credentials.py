"""Node credentials: bootstrap tokens exchanged for system:node:<name> tokens."""

from __future__ import annotations

import pytest

from clusterapi.authn import User, tokens
from clusterapi.nodeagent import credentials
from clusterapi.rbac import authorize
from clusterapi.rbac.attributes import from_request

pytestmark = pytest.mark.django_db


def test_issued_tokens_authenticate_as_the_node_and_replace_earlier_ones() -> None:
    first = credentials.issue_credentials(["n-0", "n-1"], "system:bootstrap:abcdef")
    assert [c["nodeName"] for c in first] == ["n-0", "n-1"]
    user = tokens.authenticate(first[0]["token"])
    assert user is not None
    assert user.name == "system:node:n-0"
    assert "system:nodes" in user.groups
    again = credentials.issue_credentials(["n-0"], "system:bootstrap:abcdef")
    tokens._cache.clear()
    assert tokens.authenticate(first[0]["token"]) is None
    assert tokens.authenticate(again[0]["token"]) is not None
    assert tokens.authenticate(first[1]["token"]) is not None


def test_bootstrappers_may_request_credentials_and_others_may_not() -> None:
    from clusterapi.rbac import bootstrap

    bootstrap.reconcile()
    path = "/apis/node.berth.dev/v1/nodecredentials"
    joiner = User("system:bootstrap:abcdef", groups=("system:bootstrappers",)).with_authenticated()
    nobody = User("alice").with_authenticated()
    node = User("system:node:n-0", groups=("system:nodes",)).with_authenticated()
    assert authorize(from_request("POST", path, {}, joiner)).allowed
    assert not authorize(from_request("POST", path, {}, nobody)).allowed
    assert not authorize(from_request("POST", path, {}, node)).allowed


def test_node_names_are_validated() -> None:
    with pytest.raises(Exception, match="Invalid value"):
        credentials._node_names({"nodeNames": ["Not_A_Name"]})
    with pytest.raises(Exception, match="Duplicate"):
        credentials._node_names({"nodeNames": ["a", "a"]})
    with pytest.raises(Exception, match="Required"):
        credentials._node_names({})
