"""authorization.k8s.io/v1 SelfSubjectRulesReview: what may I do? (``kubectl auth can-i --list``)"""

from __future__ import annotations

from clusterapi.resources.registry import Kind

KIND = Kind(
    group="authorization.k8s.io",
    version="v1",
    kind="SelfSubjectRulesReview",
    plural="selfsubjectrulesreviews",
    namespaced=False,
    verbs=("create",),
    has_status=False,
    review="clusterapi.api.reviews.self_subject_rules_review",
)
