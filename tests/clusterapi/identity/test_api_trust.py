"""The API accepts the issuer's ID tokens as bearer tokens, and RBAC applies to their groups."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.clusterapi.identity.helpers import tokens_for
from tests.clusterapi.rbac.helpers import cluster_binding, cluster_role, group_subject, put, rule

# The API serves from a thread pool on connections of its own: the issuer's rows must be
# committed for it to see them, as they are in a running server.
pytestmark = pytest.mark.django_db(transaction=True)


def whoami(api: Client, token: str) -> dict[str, object]:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    response = api.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json.dumps(review),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        secure=True,
    )
    assert response.status_code == 201, response.content
    info: dict[str, object] = response.json()["status"]["userInfo"]
    return info


def test_api_accepts_an_issued_id_token_and_group_bindings(browser: Client, alice: User) -> None:
    id_token = tokens_for(browser, "alice", "alice-pass-1")["id_token"]
    api = Client()
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {id_token}"}
    denied = api.get("/api/v1/namespaces", secure=True, **auth)
    assert denied.status_code == 403
    assert 'User "alice@example.com" cannot list' in denied.json()["message"]
    put(
        cluster_role(
            "devs",
            rule(["get", "list"], [""], ["namespaces"]),
            rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
        )
    )
    put(cluster_binding("devs", "devs", group_subject("oidc:devs")))
    response = api.get("/api/v1/namespaces", secure=True, **auth)
    assert response.status_code == 200 and response.json()["kind"] == "NamespaceList"
    info = whoami(api, id_token)
    assert info["username"] == "alice@example.com"
    assert info["groups"] == ["oidc:devs", "system:authenticated"]


def test_api_refuses_a_tampered_id_token(browser: Client, alice: User) -> None:
    id_token = tokens_for(browser, "alice", "alice-pass-1")["id_token"]
    head, payload, signature = id_token.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    response = Client().get(
        "/api/v1/namespaces", secure=True, HTTP_AUTHORIZATION=f"Bearer {tampered}"
    )
    assert response.status_code == 401
