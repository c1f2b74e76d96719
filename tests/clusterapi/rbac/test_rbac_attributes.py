"""HTTP requests mapped to authorization attributes exactly as upstream's RequestInfoFactory.

Cases follow requestinfo.go and requestinfo_test.go: verbs from methods, list/watch/
deletecollection on collections, namespaces and their subresources, the deprecated
/watch/ and /proxy/ prefixes, and non-resource paths.
"""

from __future__ import annotations

import pytest

from clusterapi.authn import User
from clusterapi.rbac.attributes import Attributes, from_request

BOB = User("bob", groups=("system:authenticated",))


def info(method: str, path: str, query: dict[str, str] | None = None) -> tuple[object, ...]:
    a = from_request(method, path, query or {}, BOB)
    return (
        a.resource_request,
        a.verb,
        a.api_group,
        a.api_version,
        a.namespace,
        a.resource,
        a.subresource,
        a.name,
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        (
            "GET",
            "/api/v1/namespaces/team-a/pods/web",
            {},
            (True, "get", "", "v1", "team-a", "pods", "", "web"),
        ),
        (
            "HEAD",
            "/api/v1/namespaces/team-a/pods/web",
            {},
            (True, "get", "", "v1", "team-a", "pods", "", "web"),
        ),
        (
            "GET",
            "/api/v1/namespaces/team-a/pods",
            {},
            (True, "list", "", "v1", "team-a", "pods", "", ""),
        ),
        ("GET", "/api/v1/pods", {}, (True, "list", "", "v1", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "true"}, (True, "watch", "", "v1", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "1"}, (True, "watch", "", "v1", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": ""}, (True, "watch", "", "v1", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "False"}, (True, "list", "", "v1", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "0"}, (True, "list", "", "v1", "", "pods", "", "")),
        (
            "POST",
            "/api/v1/namespaces/team-a/pods",
            {},
            (True, "create", "", "v1", "team-a", "pods", "", ""),
        ),
        (
            "PUT",
            "/api/v1/namespaces/team-a/pods/web",
            {},
            (True, "update", "", "v1", "team-a", "pods", "", "web"),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/team-a/pods/web",
            {},
            (True, "patch", "", "v1", "team-a", "pods", "", "web"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/team-a/pods/web",
            {},
            (True, "delete", "", "v1", "team-a", "pods", "", "web"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/team-a/pods",
            {},
            (True, "deletecollection", "", "v1", "team-a", "pods", "", ""),
        ),
        (
            "OPTIONS",
            "/api/v1/namespaces/team-a/pods",
            {},
            (True, "", "", "v1", "team-a", "pods", "", ""),
        ),
        # Subresources.
        (
            "GET",
            "/api/v1/namespaces/team-a/pods/web/log",
            {},
            (True, "get", "", "v1", "team-a", "pods", "log", "web"),
        ),
        (
            "POST",
            "/api/v1/namespaces/team-a/pods/web/exec",
            {},
            (True, "create", "", "v1", "team-a", "pods", "exec", "web"),
        ),
        (
            "PUT",
            "/apis/apps/v1/namespaces/team-a/deployments/web/scale",
            {},
            (True, "update", "apps", "v1", "team-a", "deployments", "scale", "web"),
        ),
        (
            "GET",
            "/api/v1/nodes/n1/status",
            {},
            (True, "get", "", "v1", "", "nodes", "status", "n1"),
        ),
        # A namespace is the resource "namespaces" named after itself, in itself.
        ("GET", "/api/v1/namespaces/x", {}, (True, "get", "", "v1", "x", "namespaces", "", "x")),
        ("GET", "/api/v1/namespaces", {}, (True, "list", "", "v1", "", "namespaces", "", "")),
        (
            "PUT",
            "/api/v1/namespaces/x/finalize",
            {},
            (True, "update", "", "v1", "x", "namespaces", "finalize", "x"),
        ),
        (
            "GET",
            "/api/v1/namespaces/x/status",
            {},
            (True, "get", "", "v1", "x", "namespaces", "status", "x"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/x",
            {},
            (True, "delete", "", "v1", "x", "namespaces", "", "x"),
        ),
        # Cluster-scoped kinds in groups.
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            {},
            (True, "get", "rbac.authorization.k8s.io", "v1", "", "clusterroles", "", "admin"),
        ),
        # The deprecated path verbs.
        (
            "GET",
            "/api/v1/watch/namespaces/team-a/pods",
            {},
            (True, "watch", "", "v1", "team-a", "pods", "", ""),
        ),
        (
            "GET",
            "/api/v1/watch/namespaces/team-a/pods/web",
            {},
            (True, "watch", "", "v1", "team-a", "pods", "", "web"),
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/team-a/pods/web/some/path",
            {},
            (True, "proxy", "", "v1", "team-a", "pods", "", "web"),
        ),
    ],
)
def test_resource_requests(
    method: str, path: str, query: dict[str, str], expected: tuple[object, ...]
) -> None:
    assert info(method, path, query) == expected


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/healthz", "get"),
        ("GET", "/version", "get"),
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/apis", "get"),
        ("GET", "/apis/apps", "get"),
        ("GET", "/apis/apps/v1", "get"),
        ("POST", "/metrics", "post"),
        ("GET", "/", "get"),
        ("GET", "/openapi/v3/apis/apps/v1", "get"),
    ],
)
def test_non_resource_requests_use_the_lowercase_method(method: str, path: str, verb: str) -> None:
    attrs = from_request(method, path, {}, BOB)
    assert attrs == Attributes(user=BOB, verb=verb, path=path)


def test_a_name_field_selector_names_the_object_of_a_list_or_watch() -> None:
    attrs = from_request(
        "GET", "/api/v1/namespaces/a/secrets", {"fieldSelector": "metadata.name=token"}, BOB
    )
    assert (attrs.verb, attrs.name) == ("list", "token")
    watch = from_request(
        "GET",
        "/api/v1/namespaces/a/secrets",
        {"watch": "true", "fieldSelector": "metadata.name==token"},
        BOB,
    )
    assert (watch.verb, watch.name) == ("watch", "token")


@pytest.mark.parametrize(
    "query",
    [
        {"fieldSelector": "metadata.name!=token"},
        {"fieldSelector": "metadata.namespace=token"},
        # Names that could not be a path segment are ignored.
        {"fieldSelector": "metadata.name=a/b"},
        {"fieldSelector": "metadata.name=.."},
        # When the list options do not decode, upstream ignores the selector altogether.
        {"fieldSelector": "metadata.name=token", "limit": "ten"},
        {"fieldSelector": "metadata.name=token", "labelSelector": "a in (b"},
    ],
)
def test_other_field_selectors_do_not_name_an_object(query: dict[str, str]) -> None:
    attrs = from_request("GET", "/api/v1/namespaces/a/secrets", query, BOB)
    assert (attrs.verb, attrs.name) == ("list", "")


def test_broken_list_options_still_report_a_watch() -> None:
    attrs = from_request("GET", "/api/v1/pods", {"watch": "true", "limit": "ten"}, BOB)
    assert attrs.verb == "watch"


def test_a_field_selector_never_turns_a_delete_collection_into_a_delete() -> None:
    attrs = from_request(
        "DELETE", "/api/v1/namespaces/a/pods", {"fieldSelector": "metadata.name=x"}, BOB
    )
    assert (attrs.verb, attrs.name) == ("deletecollection", "")


def test_attributes_keep_the_path_and_user() -> None:
    attrs = from_request("GET", "/api/v1/namespaces/a/pods/x/log", {}, BOB)
    assert attrs.path == "/api/v1/namespaces/a/pods/x/log"
    assert attrs.user is BOB
    assert attrs.combined_resource == "pods/log"


def test_repeated_query_parameters_count_by_their_first_value_as_in_go() -> None:
    from django.http import QueryDict

    query = QueryDict("watch=false&watch=true&fieldSelector=metadata.name%3Da&fieldSelector=x")
    attrs = from_request("GET", "/api/v1/namespaces/n/secrets", query, BOB)
    assert (attrs.verb, attrs.name) == ("list", "a")
