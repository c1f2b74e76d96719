"""Admission: what every object passes before the store writes it.

The store calls ``admit`` on each create and update, after the kind's defaulting: it checks
the object against the kind's kubernetes-validate schema (unknown fields are rejected, warned
about or dropped according to the request's ``fieldValidation``; mistyped fields are 422
Invalid with field paths), canonicalises quantities, validates names, labels and annotations,
and runs the kind's own ``validate`` hook. Nothing is written unless admission passes.
Later issues add LimitRange, ResourceQuota and policy plugins here.
"""

from clusterapi.admission.validation import admit

__all__ = ["admit"]
