"""authorization.k8s.io/v1 SelfSubjectAccessReview: may I do this? (``kubectl auth can-i``)"""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="authorization.k8s.io",
    version="v1",
    kind="SelfSubjectAccessReview",
    plural="selfsubjectaccessreviews",
    namespaced=False,
    verbs=("create",),
    has_status=False,
    review="clusterapi.api.reviews.self_subject_access_review",
)
