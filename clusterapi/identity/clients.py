"""OAuth2 clients as authlib sees them: static clients of the file first, then admin rows.

Public clients (``public: true``) have no secret and must use PKCE; confidential clients
authenticate with ``client_secret_basic`` or ``client_secret_post`` and may use PKCE.
Redirect URIs (and post-logout redirect URIs) match by exact string comparison only.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from clusterapi.identity import config as identity_config
from clusterapi.identity.models import Client, digest

SCOPES = ("openid", "email", "profile", "groups", "offline_access")
GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
)
SECRET_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class OAuthClient:
    """One client, with the methods of authlib's ``ClientMixin``."""

    client_id: str
    name: str
    public: bool
    secret_digest: str = ""
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    client_metadata: dict[str, Any] = field(default_factory=dict)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is required in every request (OIDC Core 3.1.2.1)

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.public or not self.secret_digest:
            return False
        return hmac.compare_digest(digest(client_secret), self.secret_digest)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none" if self.public else method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


def _build(
    client_id: str,
    name: str,
    public: bool,
    secret_digest: str,
    redirects: Any,
    logouts: Any,
) -> OAuthClient:
    return OAuthClient(
        client_id=client_id,
        name=name or client_id,
        public=public,
        secret_digest=secret_digest,
        redirect_uris=tuple(redirects),
        post_logout_redirect_uris=tuple(logouts),
        client_metadata={"post_logout_redirect_uris": list(logouts)},
    )


def get(client_id: str | None) -> OAuthClient | None:
    """The client with this id, or None."""
    if not client_id:
        return None
    for static in identity_config.get().static_clients:
        if static.id == client_id:
            return _build(
                static.id,
                static.name,
                static.public,
                digest(static.secret) if static.secret else "",
                static.redirect_uris,
                static.post_logout_redirect_uris,
            )
    row = Client.objects.filter(client_id=client_id).first()
    if row is None:
        return None
    return _build(
        row.client_id,
        row.name,
        row.public,
        row.secret_digest,
        row.redirect_uris or (),
        row.post_logout_redirect_uris or (),
    )
