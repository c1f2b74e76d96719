"""RBAC with Kubernetes' exact semantics: the one authorizer for the API, dashboard and admin.

Modules
-------
* ``attributes``  — ``Attributes`` of a request and ``from_request`` (upstream's
  ``RequestInfoFactory``: HTTP method and path to verb, resource, namespace, name).
* ``rules``       — the PolicyRule model, its match predicates and the ``covers`` check.
* ``policy``      — ``PolicySet``: an immutable, indexed snapshot of Roles, ClusterRoles and
  bindings; the pure evaluation core (no database).
* ``authorizer``  — ``authorize`` (system:masters, then the Node authorizer, then RBAC over the
  live policy index), ``forbidden_message``, ``rules_for`` (SelfSubjectRulesReview),
  ``who_can``, and ``invalidate`` for the store's on-commit hook.
* ``node``        — the Node authorizer and NodeRestriction admission for node agents.
* ``escalation``  — privilege-escalation checks on writes of roles and bindings.
* ``aggregation`` — the clusterrole-aggregation controller.
* ``bootstrap``   — the default roles and bindings (``bootstrap-policy.yaml``) and their
  reconciliation at start.

Flow of one request
-------------------
The API view builds ``Attributes`` with ``from_request`` and calls ``authorize``; a denial is
answered with ``forbidden_error`` (403, upstream's wording). Writes of RBAC objects then pass
``escalation.check_role``/``check_binding`` (and, for nodes, ``node.admit``) before the store
commits them; the commit calls ``authorizer.invalidate`` and wakes ``aggregation``.
"""

from clusterapi.rbac.attributes import Attributes, from_request
from clusterapi.rbac.authorizer import (
    RulesReview,
    authorize,
    forbidden_error,
    forbidden_message,
    invalidate,
    rules_for,
    who_can,
)
from clusterapi.rbac.policy import Decision, Grant, PolicySet

__all__ = [
    "Attributes",
    "Decision",
    "Grant",
    "PolicySet",
    "RulesReview",
    "authorize",
    "forbidden_error",
    "forbidden_message",
    "from_request",
    "invalidate",
    "rules_for",
    "who_can",
]
