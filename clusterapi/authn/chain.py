"""The authenticator chain (see the package docstring for the order and the rules)."""

from __future__ import annotations

import logging
from typing import Any

from clusterapi.authn import AuthenticationError, User, bootstrap, oidc, serviceaccounts, tokenfile
from clusterapi.authn import tokens as issued_tokens

logger = logging.getLogger(__name__)


def bearer_token(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate_token(token: str) -> User | None:
    """The user a bearer token proves, or None (the API answers 401)."""
    try:
        user = tokenfile.authenticate(token)
        if user is not None:
            return user
        if token.startswith(issued_tokens.PREFIX):
            return issued_tokens.authenticate(token)
        if bootstrap.TOKEN_RE.match(token):
            return bootstrap.authenticate(token)
        if token.count(".") == 2:
            iss = serviceaccounts.claims_issuer(token)
            if iss == serviceaccounts.issuer():
                return serviceaccounts.authenticate(token)
            issuer = oidc.issuer_for(iss)
            if issuer is not None:
                return issuer.authenticate(token)
    except AuthenticationError as exc:
        logger.info("rejected bearer token: %s", exc)
    return None


# Where the dashboard's OIDC login (``dashboard/oidc.py``) keeps the identity the API would
# give the same ID token: {"name", "uid", "groups"} with the issuer's prefixes applied.
SESSION_IDENTITY_KEY = "berth.oidc.identity"


def session_user(request: Any) -> User | None:
    """The dashboard user of a browser request's Django session, if any."""
    django_user = getattr(request, "user", None)
    if django_user is None or not django_user.is_authenticated:
        return None
    session = getattr(request, "session", None)
    oidc_identity = session.get(SESSION_IDENTITY_KEY) if session is not None else None
    if oidc_identity:
        # An OIDC login is exactly its token's user and groups; the Django account's own
        # groups and superuser flag do not add to it.
        return User(
            name=oidc_identity["name"],
            uid=oidc_identity["uid"],
            groups=tuple(oidc_identity["groups"]),
        ).with_authenticated()
    groups = tuple(django_user.groups.values_list("name", flat=True))
    if django_user.is_superuser:
        groups = (*groups, "system:masters")
    return User(
        name=django_user.get_username(), uid=str(django_user.pk), groups=groups
    ).with_authenticated()


def authenticate(request: Any) -> User | None:
    """Authenticate an HTTP request: a bearer token if one is sent, else the session."""
    token = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
    if token is not None:
        return authenticate_token(token)
    return session_user(request)
