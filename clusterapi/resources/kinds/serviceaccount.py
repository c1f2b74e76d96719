"""core/v1 ServiceAccount: an identity for processes that run in pods."""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="",
    version="v1",
    kind="ServiceAccount",
    plural="serviceaccounts",
    short_names=("sa",),
    has_status=False,
    subresources=("token",),
    delete_returns_object=True,
)
