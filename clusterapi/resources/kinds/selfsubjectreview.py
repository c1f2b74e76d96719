"""authentication.k8s.io/v1 SelfSubjectReview: who am I? (``kubectl auth whoami``)"""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="authentication.k8s.io",
    version="v1",
    kind="SelfSubjectReview",
    plural="selfsubjectreviews",
    namespaced=False,
    verbs=("create",),
    has_status=False,
    review="clusterapi.api.reviews.self_subject_review",
)
