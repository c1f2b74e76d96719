"""authorization.k8s.io/v1 LocalSubjectAccessReview: may this user do this in this namespace?"""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="authorization.k8s.io",
    version="v1",
    kind="LocalSubjectAccessReview",
    plural="localsubjectaccessreviews",
    verbs=("create",),
    has_status=False,
    review="clusterapi.api.reviews.subject_access_review",
)
