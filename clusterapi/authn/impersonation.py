"""Impersonation: ``Impersonate-User``, ``Impersonate-Group``, ``Impersonate-Uid`` and
``Impersonate-Extra-<key>`` headers, honoured only when RBAC grants the ``impersonate`` verb on
each requested user (or service account), group, uid and extra value, as upstream does."""

from __future__ import annotations

from typing import Any

from clusterapi.authn import User
from clusterapi.core.errors import ApiError, bad_request

_SA_PREFIX = "system:serviceaccount:"


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _check(user: User, resource: str, name: str, namespace: str = "", group: str = "") -> None:
    from clusterapi.rbac import Attributes, authorize, forbidden_error

    attrs = Attributes(
        user=user,
        verb="impersonate",
        namespace=namespace,
        api_group=group,
        api_version="",
        resource=resource,
        subresource="",
        name=name,
        path="",
        resource_request=True,
    )
    decision = authorize(attrs)
    if not decision.allowed:
        raise forbidden_error(attrs, decision.reason)


def impersonate(meta: dict[str, Any], user: User) -> tuple[User, str]:
    """The identity to act as, and the impersonator's name ("" without impersonation)."""
    target = str(meta.get("HTTP_IMPERSONATE_USER", "")).strip()
    groups = _split(str(meta.get("HTTP_IMPERSONATE_GROUP", "")))
    uid = str(meta.get("HTTP_IMPERSONATE_UID", "")).strip()
    extra: dict[str, list[str]] = {}
    for key, value in meta.items():
        if key.startswith("HTTP_IMPERSONATE_EXTRA_"):
            name = key.removeprefix("HTTP_IMPERSONATE_EXTRA_").lower().replace("_", "-")
            extra[name] = _split(str(value))
    if not target:
        if groups or uid or extra:
            raise bad_request("requested impersonation of groups, uid or extra without a user")
        return user, ""
    if target.startswith(_SA_PREFIX):
        namespace, _, name = target.removeprefix(_SA_PREFIX).partition(":")
        _check(user, "serviceaccounts", name, namespace=namespace)
    else:
        _check(user, "users", target)
    for group in groups:
        _check(user, "groups", group)
    if uid:
        _check(user, "uids", uid, group="authentication.k8s.io")
    for key, values in extra.items():
        for value in values:
            _check(user, f"userextras/{key}", value, group="authentication.k8s.io")
    if target.startswith(_SA_PREFIX) and not groups:
        namespace = target.removeprefix(_SA_PREFIX).partition(":")[0]
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    acting = User(name=target, uid=uid, groups=tuple(groups), extra=extra)
    if target != "system:anonymous":
        acting = acting.with_authenticated()
    return acting, user.name


__all__ = ["ApiError", "impersonate"]
