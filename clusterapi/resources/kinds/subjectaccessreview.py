"""authorization.k8s.io/v1 SubjectAccessReview: may this user do this?"""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="authorization.k8s.io",
    version="v1",
    kind="SubjectAccessReview",
    plural="subjectaccessreviews",
    namespaced=False,
    verbs=("create",),
    has_status=False,
    review="clusterapi.api.reviews.subject_access_review",
)
