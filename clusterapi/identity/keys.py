"""Signing keys: RS256 (RSA-2048) key pairs in the database, rotated on a schedule.

As dex's local signer: the newest key signs; a key is replaced once it is older than
``signer.keysRotationPeriod`` (default 6 h); a replaced key stays in the JWKS for as long as
an ID token it signed can still be valid (``expiry.idTokens``, default 24 h) and is deleted
after that. Rotation happens lazily when a key is needed and from the celery beat task
``berth.identity.rotate_keys``, whichever comes first.

Two processes may decide to rotate at the same moment. Each inserts the next ``generation``;
the unique constraint lets one insert win and the other re-reads the winner's key, so there
is never more than one signing key per generation. Key material is generated and serialised
by joserfc (on ``cryptography``); nothing here is cryptography of our own.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from joserfc.jwk import KeySet, RSAKey

from clusterapi.identity import config as identity_config
from clusterapi.identity.models import SigningKey

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
KEY_SIZE = 2048


def _new_row(generation: int, now: datetime) -> SigningKey:
    key = RSAKey.generate_key(KEY_SIZE, parameters={"alg": ALGORITHM, "use": "sig"})
    key.ensure_kid()
    return SigningKey(
        generation=generation,
        kid=str(key.kid),
        private_jwk=dict(key.as_dict(private=True)),
        public_jwk=dict(key.as_dict(private=False)),
        created=now,
    )


def _due(key: SigningKey | None, now: datetime) -> bool:
    period = identity_config.get().keys_rotation_period
    return key is None or key.created + period <= now


def rotate(now: datetime | None = None, force: bool = False) -> SigningKey:
    """Make a new signing key if the current one is due (or ``force``); the current key."""
    now = now or timezone.now()
    current = SigningKey.objects.first()
    if not force and not _due(current, now):
        assert current is not None
        return current
    generation = current.generation + 1 if current is not None else 1
    row = _new_row(generation, now)  # outside the transaction: key generation is slow
    try:
        with transaction.atomic():
            # Re-check under the row lock (PostgreSQL); SQLite's IMMEDIATE transactions
            # serialise writers anyway, and the unique generation settles any race left.
            latest = SigningKey.objects.select_for_update().first()
            if latest is not None and latest.generation >= generation:
                return latest
            row.save()
            SigningKey.objects.filter(generation__lt=generation, retired__isnull=True).update(
                retired=now
            )
    except IntegrityError:
        logger.info("signing key generation %d was made by another process", generation)
        winner = SigningKey.objects.first()
        assert winner is not None
        return winner
    logger.info("new signing key %s (generation %d)", row.kid, generation)
    prune(now)
    return row


def prune(now: datetime | None = None) -> int:
    """Delete replaced keys whose tokens have all expired; how many were deleted."""
    now = now or timezone.now()
    horizon = now - identity_config.get().expiry.id_tokens
    deleted, _ = SigningKey.objects.filter(retired__isnull=False, retired__lt=horizon).delete()
    return deleted


def signing_key() -> RSAKey:
    """The key that signs now (rotating first when it is due)."""
    row = rotate()
    return RSAKey.import_key(row.private_jwk)


def published(now: datetime | None = None) -> list[SigningKey]:
    """The keys whose signatures may still be valid: the signing key and recent retirees."""
    now = now or timezone.now()
    horizon = now - identity_config.get().expiry.id_tokens
    return [
        row for row in SigningKey.objects.all() if row.retired is None or row.retired >= horizon
    ]


def jwks() -> dict[str, Any]:
    """The public JWKS served at ``/keys`` (the signing key first)."""
    rotate()
    return {"keys": [dict(row.public_jwk) for row in published()]}


def verification_keys() -> KeySet:
    """The published keys as a joserfc key set (``id_token_hint`` on logout)."""
    return KeySet.import_key_set(jwks())  # type: ignore[arg-type]
