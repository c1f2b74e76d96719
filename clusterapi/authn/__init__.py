"""Authentication: who is making a request.

Every request to Berth (API, dashboard, admin site) is authenticated by one chain, tried in
order; the first authenticator that recognises the credential decides (a credential it
recognises but rejects is final: 401, not a fall-through to anonymous):

1. ``tokenfile``: static tokens from a Kubernetes-style CSV token file (``BERTH_TOKEN_FILE``);
2. ``tokens``: bearer tokens Berth issued itself (``manage.py kubeconfig``, the bootstrap admin);
3. ``bootstrap``: bootstrap tokens ``<id>.<secret>`` stored as Secrets in kube-system, for
   joining node agents (``manage.py token create``);
4. ``serviceaccounts``: service-account JWTs signed by the cluster's key (TokenRequest), bound
   to the ServiceAccount (and pod) that still has to exist;
5. ``oidc``: ID tokens from the configured OIDC issuers (the built-in one and external ones),
   verified against each issuer's JWKS;
6. the dashboard's Django session, for browser requests (``session_user``).

The result is a ``User`` (name, uid, groups with ``system:authenticated``, extra), which
``impersonation`` may swap for another identity when RBAC allows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class User:
    """An authenticated identity, as Kubernetes' user.Info."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    def with_authenticated(self) -> User:
        """The same user with the ``system:authenticated`` group every authenticated user has."""
        if "system:authenticated" in self.groups:
            return self
        return User(self.name, self.uid, (*self.groups, "system:authenticated"), self.extra)


class AuthenticationError(Exception):
    """A credential that an authenticator recognises and rejects (answered with 401)."""
