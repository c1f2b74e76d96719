"""Create-only review kinds: questions answered on the spot, nothing stored.

``kubectl auth can-i`` (SelfSubjectAccessReview), ``auth can-i --list``
(SelfSubjectRulesReview), ``auth whoami`` (SelfSubjectReview), SubjectAccessReview and its
namespaced LocalSubjectAccessReview (for other users), and TokenReview. Each answer echoes
the request with a ``status`` filled in by the one authorizer (``clusterapi.rbac``) or the
one authenticator chain (``clusterapi.authn``), as upstream's review REST storage does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterapi.authn import User, chain
from clusterapi.core.errors import bad_request

if TYPE_CHECKING:
    from clusterapi.rbac.attributes import Attributes

Obj = dict[str, Any]


def _user_info(user: User) -> Obj:
    info: Obj = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


def _attributes(user: User, spec: Obj) -> Attributes:
    from clusterapi.rbac.attributes import Attributes

    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if isinstance(resource, dict):
        return Attributes(
            user=user,
            verb=str(resource.get("verb", "")),
            namespace=str(resource.get("namespace", "")),
            api_group=str(resource.get("group", "")),
            api_version=str(resource.get("version", "")),
            resource=str(resource.get("resource", "")),
            subresource=str(resource.get("subresource", "")),
            name=str(resource.get("name", "")),
            path="",
            resource_request=True,
        )
    if isinstance(non_resource, dict):
        return Attributes(
            user=user,
            verb=str(non_resource.get("verb", "")),
            namespace="",
            api_group="",
            api_version="",
            resource="",
            subresource="",
            name="",
            path=str(non_resource.get("path", "")),
            resource_request=False,
        )
    raise bad_request(
        "exactly one of nonResourceAttributes or resourceAttributes must be specified"
    )


def _access_status(attrs: Attributes) -> Obj:
    from clusterapi.rbac import authorizer

    decision = authorizer.authorize(attrs)
    status: Obj = {"allowed": decision.allowed}
    if decision.denied:
        status["denied"] = True
    if decision.reason:
        status["reason"] = decision.reason
    return status


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise bad_request("spec is required")
    return spec


def self_subject_access_review(user: User, obj: Obj, namespace: str) -> Obj:
    obj["status"] = _access_status(_attributes(user, _spec(obj)))
    return obj


def subject_access_review(user: User, obj: Obj, namespace: str) -> Obj:
    spec = _spec(obj)
    if not spec.get("user") and not spec.get("groups"):
        raise bad_request("at least one of user or group must be specified")
    subject = User(
        name=str(spec.get("user", "")),
        uid=str(spec.get("uid", "")),
        groups=tuple(spec.get("groups") or ()),
        extra={k: list(v) for k, v in (spec.get("extra") or {}).items()},
    )
    if namespace:
        # LocalSubjectAccessReview: the namespace comes from the URL and must agree.
        attrs = spec.get("resourceAttributes") or {}
        if not isinstance(attrs, dict) or spec.get("nonResourceAttributes"):
            raise bad_request("disallowed on this kind of request: nonResourceAttributes")
        if attrs.get("namespace", namespace) != namespace:
            raise bad_request(
                f"spec.resourceAttributes.namespace must match namespace: {namespace}"
            )
        attrs["namespace"] = namespace
    obj["status"] = _access_status(_attributes(subject, spec))
    return obj


def self_subject_rules_review(user: User, obj: Obj, namespace: str) -> Obj:
    from clusterapi.rbac import authorizer

    spec = obj.get("spec") or {}
    review = authorizer.rules_for(user, str(spec.get("namespace", "")))
    obj["status"] = review.to_status()
    return obj


def self_subject_review(user: User, obj: Obj, namespace: str) -> Obj:
    obj["status"] = {"userInfo": _user_info(user)}
    return obj


def token_review(user: User, obj: Obj, namespace: str) -> Obj:
    token = str(_spec(obj).get("token", ""))
    reviewed = chain.authenticate_token(token) if token else None
    status: Obj = {"authenticated": reviewed is not None}
    if reviewed is not None:
        status["user"] = _user_info(reviewed)
    obj["status"] = status
    return obj


def who_can(request: Any) -> Any:
    """``GET /apis/authorization.berth.dev/v1/whocan?verb=&resource=&namespace=...``: which
    users, groups and service accounts may do this, and through which binding and role.

    Kubernetes has no such query; it is authorized like any resource request (verb ``get`` on
    ``whocan`` in group ``authorization.berth.dev``), which only cluster admins hold by default.
    """
    from clusterapi.api.status import json_response
    from clusterapi.rbac import authorizer

    query = request.GET
    verb, resource = query.get("verb", ""), query.get("resource", "")
    if not verb or not resource:
        raise bad_request("verb and resource are required query parameters")
    resource, _, subresource = resource.partition("/")
    spec = {
        "verb": verb,
        "group": query.get("group", ""),
        "resource": resource,
        "subresource": subresource or query.get("subresource", ""),
        "namespace": query.get("namespace", ""),
        "name": query.get("name", ""),
    }
    grants = authorizer.who_can(
        spec["verb"],
        spec["group"],
        spec["resource"],
        spec["subresource"],
        spec["namespace"],
        spec["name"],
    )
    subjects = []
    for grant in grants:
        entry: Obj = {"kind": grant.subject_kind, "name": grant.subject_name}
        if grant.subject_namespace:
            entry["namespace"] = grant.subject_namespace
        if grant.binding_name:
            entry["binding"] = {"kind": grant.binding_kind, "name": grant.binding_name}
            if grant.binding_namespace:
                entry["binding"]["namespace"] = grant.binding_namespace
        if grant.role_name:
            entry["role"] = {"kind": grant.role_kind, "name": grant.role_name}
        if grant.bypass:
            entry["bypass"] = True
        if grant.note:
            entry["note"] = grant.note
        subjects.append(entry)
    return json_response(
        {
            "kind": "WhoCanReview",
            "apiVersion": "authorization.berth.dev/v1",
            "spec": spec,
            "status": {"subjects": subjects},
        }
    )
