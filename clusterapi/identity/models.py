"""What the issuer stores: clients, signing keys, codes, refresh-token families, device requests.

Secrets are stored as SHA-256 digests (``digest``), never as issued: authorization codes,
access and refresh tokens and device codes are high-entropy random strings, so a fast hash
is enough and a database dump gives nobody a usable credential. Client secrets of clients
made in the admin site are kept the same way.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.utils import timezone

from clusterapi.identity.connectors.base import Identity


def digest(value: str) -> str:
    """The stored form of a secret the issuer hands out."""
    return hashlib.sha256(value.encode()).hexdigest()


class Client(models.Model):
    """An OAuth2 client (relying party) managed in the admin site.

    Static clients of the configuration file are not rows: they live in memory (``clients.py``)
    and shadow a row with the same id.
    """

    client_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True)
    secret_digest = models.CharField(max_length=64, blank=True, editable=False)
    public = models.BooleanField(
        default=False, help_text="No secret; PKCE is required (CLIs, single-page apps)."
    )
    redirect_uris = models.JSONField(default=list, blank=True, help_text="Exact matches only.")
    post_logout_redirect_uris = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or self.client_id

    def set_secret(self, secret: str) -> None:
        self.secret_digest = digest(secret) if secret else ""

    @staticmethod
    def new_secret() -> str:
        return secrets.token_urlsafe(32)


class SigningKey(models.Model):
    """An RS256 key pair; the newest one signs, older ones verify until their tokens expire.

    ``generation`` is unique: two processes rotating at once both try to insert the next
    generation and one of them fails on the constraint (dex's ``errAlreadyRotated``).
    """

    generation = models.PositiveIntegerField(unique=True)
    kid = models.CharField(max_length=64, unique=True)
    private_jwk = models.JSONField()
    public_jwk = models.JSONField()
    created = models.DateTimeField(default=timezone.now)
    # When the next key replaced it; it is published until retired + idTokens expiry.
    retired = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-generation"]

    def __str__(self) -> str:
        return f"{self.kid} (generation {self.generation})"


class IdentityRecord(models.Model):
    """Fields shared by everything that carries the identity of a logged-in user."""

    client_id = models.CharField(max_length=200)
    scope = models.TextField(blank=True)
    identity = models.JSONField()

    class Meta:
        abstract = True

    def get_identity(self) -> Identity:
        return Identity.from_dict(self.identity)

    def get_scope(self) -> str:
        return self.scope


class AuthorizationCode(IdentityRecord):
    """A code of the authorization-code flow; single use, short-lived.

    A used code is kept (``used``) so that a second use can be recognised and the tokens of
    its first use revoked (RFC 6749 section 4.1.2, ASVS 10.4.2).
    """

    code_digest = models.CharField(max_length=64, unique=True)
    redirect_uri = models.TextField(blank=True)
    nonce = models.CharField(max_length=500, blank=True)
    code_challenge = models.CharField(max_length=128, blank=True)
    code_challenge_method = models.CharField(max_length=10, blank=True)
    auth_time = models.IntegerField()
    expires = models.DateTimeField()
    used = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"code for {self.client_id}"

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_nonce(self) -> str | None:
        return self.nonce or None

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None

    def is_expired(self) -> bool:
        return self.expires <= timezone.now()


class TokenFamily(IdentityRecord):
    """Everything issued from one login (dex's offline session for one client).

    Refresh tokens rotate inside a family; replaying a rotated one revokes the whole family.
    """

    code_digest = models.CharField(max_length=64, blank=True, db_index=True)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(default=timezone.now)
    revoked = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"tokens of {self.client_id} for {self.identity.get('username', '?')}"

    def revoke(self, reason: str) -> None:
        if self.revoked is None:
            self.revoked = timezone.now()
            self.revoked_reason = reason
            self.save(update_fields=["revoked", "revoked_reason"])


class Token(models.Model):
    """One access token and (when ``offline_access``) its refresh token."""

    family = models.ForeignKey(TokenFamily, on_delete=models.CASCADE, related_name="tokens")
    access_digest = models.CharField(max_length=64, unique=True)
    refresh_digest = models.CharField(max_length=64, unique=True, null=True, blank=True)
    issued = models.DateTimeField(default=timezone.now)
    expires_in = models.IntegerField()
    # Set when this refresh token was exchanged for the next one (rotation).
    rotated = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"token {self.pk} of family {self.family_id}"

    # --- authlib's TokenMixin ------------------------------------------------------------------

    def check_client(self, client: Any) -> bool:
        return bool(self.family.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.family.scope

    @property
    def scope(self) -> str:
        return self.family.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def expires_at(self) -> datetime:
        return self.issued + timedelta(seconds=self.expires_in)

    def is_expired(self) -> bool:
        return self.expires_at() <= timezone.now()

    def is_revoked(self) -> bool:
        return self.revoked or self.family.revoked is not None

    def get_user(self) -> Identity:
        return self.family.get_identity()

    def get_client(self) -> Any:
        from clusterapi.identity import clients

        return clients.get(self.family.client_id)


class DeviceRequest(IdentityRecord):
    """A pending device authorization (RFC 8628): the CLI polls with ``device_code`` while the
    user enters ``user_code`` in a browser, logs in and approves or denies."""

    PENDING, APPROVED, DENIED = "pending", "approved", "denied"

    device_code_digest = models.CharField(max_length=64, unique=True)
    user_code = models.CharField(max_length=20, unique=True)
    expires = models.DateTimeField()
    interval = models.IntegerField(default=5)
    last_poll = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, default=PENDING)
    consumed = models.BooleanField(default=False)
    identity = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"device {self.user_code} of {self.client_id}"

    # --- authlib's DeviceCredentialMixin -------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_user_code(self) -> str:
        return self.user_code

    def get_nonce(self) -> None:
        return None

    def get_auth_time(self) -> None:
        return None

    def is_expired(self) -> bool:
        return self.expires <= timezone.now()
