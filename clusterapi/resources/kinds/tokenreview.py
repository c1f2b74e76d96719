"""authentication.k8s.io/v1 TokenReview: whom does this token authenticate?"""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="authentication.k8s.io",
    version="v1",
    kind="TokenReview",
    plural="tokenreviews",
    namespaced=False,
    verbs=("create",),
    has_status=False,
    review="clusterapi.api.reviews.token_review",
)
