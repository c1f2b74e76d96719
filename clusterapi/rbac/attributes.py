"""Request attributes: what an authorization decision is about.

Role
----
Every authorization question in Berth, from the API, the dashboard, the admin site or a
SubjectAccessReview, is asked with one ``Attributes`` value: who (``user``), what verb, on
which resource (group, version, resource, subresource, namespace, name) or, for anything
outside the resource tree, which ``path``.

Flow
----
``from_request(method, path, query, user)`` maps an HTTP request to attributes exactly as the
Kubernetes API server's ``RequestInfoFactory`` does, so the same rules allow the same requests:

* ``/api/<v>/...`` and ``/apis/<group>/<v>/...`` with at least a resource are resource
  requests; everything else (``/healthz``, ``/version``, ``/api``, ``/apis/apps``,
  ``/apis/apps/v1``) is a non-resource request whose verb is the lower-cased HTTP method.
* GET/HEAD of an object is ``get``; of a collection ``list``, or ``watch`` with
  ``?watch=<anything but 0/false>``; a ``metadata.name=`` field selector on a list or watch
  names the object (so ``resourceNames`` rules can allow it). POST is ``create``, PUT
  ``update``, PATCH ``patch``, DELETE ``delete`` (``deletecollection`` without a name).
* ``namespaces/<ns>/<resource>/...`` sets the namespace; ``/api/v1/namespaces/x`` is the
  resource ``namespaces`` named ``x`` (in namespace ``x``, as upstream); ``status`` and
  ``finalize`` after a namespace name are its subresources.
* The deprecated ``/watch/`` and ``/proxy/`` path prefixes set the verb, as upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clusterapi.authn import User
from clusterapi.core.selectors import FieldSelector, LabelSelector, SelectorError

_API_PREFIXES = frozenset({"api", "apis"})
_GROUPLESS_PREFIXES = frozenset({"api"})
# Path segments that name a verb rather than a resource (deprecated, still honoured).
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_SPECIAL_VERBS_WITHOUT_SUBRESOURCES = frozenset({"proxy"})
# What may follow /namespaces/<name>/ and still be about the namespace itself.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# List options decoded as integers: a value that is not one makes upstream's decoding fail,
# and then the field selector is not consulted for a name either.
_INT_OPTIONS = ("limit", "timeoutSeconds")


@dataclass(frozen=True)
class Attributes:
    """The attributes of one request, as Kubernetes' ``authorizer.Attributes``."""

    user: User
    verb: str
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = False

    @property
    def combined_resource(self) -> str:
        """``resource/subresource`` (or just ``resource``), as rules name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @classmethod
    def for_resource(
        cls,
        user: User,
        verb: str,
        resource: str,
        *,
        group: str = "",
        version: str = "",
        namespace: str = "",
        name: str = "",
        subresource: str = "",
    ) -> Attributes:
        """Attributes of a resource request built by hand (reviews, the dashboard, tests)."""
        return cls(
            user=user,
            verb=verb,
            namespace=namespace,
            api_group=group,
            api_version=version,
            resource=resource,
            subresource=subresource,
            name=name,
            resource_request=True,
        )

    @classmethod
    def for_path(cls, user: User, verb: str, path: str) -> Attributes:
        """Attributes of a non-resource request (``get /healthz``)."""
        return cls(user=user, verb=verb, path=path)


def _split_path(path: str) -> list[str]:
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def _watch_requested(value: str) -> bool:
    # Upstream's string-to-bool conversion: only "0" and "false" (any case) are false.
    return not (value == "0" or value.lower() == "false")


def _valid_path_segment(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "%" not in name


def _first(query: Mapping[str, str], key: str) -> str | None:
    """The first value of a query parameter, as Go's ``url.Values`` gives it.

    (A Django ``QueryDict`` answers ``[key]`` with the last value; ``getlist`` has them all.)
    """
    if key not in query:
        return None
    getlist = getattr(query, "getlist", None)
    if getlist is not None:
        values = getlist(key)
        return str(values[0]) if values else None
    return query[key]


def _list_options_decode(query: Mapping[str, str]) -> FieldSelector | None:
    """The field selector when the list options decode cleanly, else None (as upstream)."""
    try:
        for option in _INT_OPTIONS:
            value = _first(query, option)
            if value is not None:
                int(value)
        LabelSelector.parse(_first(query, "labelSelector") or "")
        return FieldSelector.parse(_first(query, "fieldSelector") or "")
    except (ValueError, SelectorError):
        return None


def from_request(method: str, path: str, query: Mapping[str, str], user: User) -> Attributes:
    """The attributes of an HTTP request (``RequestInfoFactory.NewRequestInfo``)."""
    verb = method.lower()
    parts = _split_path(path)
    non_resource = Attributes(user=user, verb=verb, path=path)
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in _GROUPLESS_PREFIXES:
        # /apis/<group>/<version> alone is discovery, not a resource.
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]

    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            # Upstream fails the request here ("unable to determine kind and namespace");
            # the attributes it has so far describe a resource request with no resource.
            return Attributes(
                user=user,
                verb=verb,
                api_group=group,
                api_version=version,
                path=path,
                resource_request=True,
            )
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]

    resource = name = subresource = ""
    if len(parts) >= 3 and verb not in _SPECIAL_VERBS_WITHOUT_SUBRESOURCES:
        subresource = parts[2]
    if len(parts) >= 2:
        name = parts[1]
    if parts:
        resource = parts[0]

    if not name and verb == "get":
        fields = _list_options_decode(query)
        watch = _first(query, "watch")
        verb = "watch" if watch is not None and _watch_requested(watch) else "list"
        pinned = fields.requires_exact_match("metadata.name") if fields is not None else None
        if pinned is not None and _valid_path_segment(pinned):
            name = pinned
    if not name and verb == "delete":
        verb = "deletecollection"

    return Attributes(
        user=user,
        verb=verb,
        namespace=namespace,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        name=name,
        path=path,
        resource_request=True,
    )
