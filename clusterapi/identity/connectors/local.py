"""The password database (``enablePasswordDB``): Django users and dex-style static passwords.

Django users log in with their username or email; their password is checked by Django's
hashers and their groups are their Django groups (managed in the admin site). Static
passwords come from ``identity.staticPasswords`` with bcrypt hashes, as in dex, including
dex's ``groups``. A user listed in both is the Django user. An inactive or deleted Django user,
or a static password removed from the file, can neither log in nor refresh.
"""

from __future__ import annotations

from typing import Any

import bcrypt
from django.contrib.auth import get_user_model
from django.db.models import Q

from clusterapi.identity.config import LOCAL_CONNECTOR_ID, ConnectorConfig, StaticPassword
from clusterapi.identity.connectors.base import Identity

KIND_DJANGO = "django"
KIND_STATIC = "static"


class LocalConnector:
    """Django users plus static passwords, under the connector id ``local``."""

    TYPE = "local"

    def __init__(self, static_passwords: tuple[StaticPassword, ...] = ()) -> None:
        self.id = LOCAL_CONNECTOR_ID
        self.name = "Email"
        self.static_passwords = static_passwords

    @classmethod
    def parse(cls, source: str, config: ConnectorConfig) -> None:
        """The password database has no settings of its own (``staticPasswords`` aside)."""

    def _identity(self, user: Any) -> Identity:
        return Identity(
            user_id=str(user.pk),
            username=user.get_username(),
            connector_id=self.id,
            email=user.email,
            email_verified=bool(user.email),
            name=user.get_full_name() or user.get_username(),
            groups=tuple(user.groups.order_by("name").values_list("name", flat=True)),
            connector_data={"kind": KIND_DJANGO},
        )

    def _static_identity(self, entry: StaticPassword) -> Identity:
        return Identity(
            user_id=entry.user_id,
            username=entry.username,
            connector_id=self.id,
            email=entry.email,
            email_verified=True,
            name=entry.name or entry.username,
            groups=entry.groups,
            connector_data={"kind": KIND_STATIC},
        )

    def _static(self, login: str) -> StaticPassword | None:
        wanted = login.strip().lower()
        for entry in self.static_passwords:
            if wanted in (entry.email.lower(), entry.username.lower()):
                return entry
        return None

    def login(self, username: str, password: str) -> Identity | None:
        users = get_user_model().objects.filter(Q(username=username) | Q(email__iexact=username))
        user = users.order_by("pk").first() if username else None
        if user is not None:
            if user.check_password(password) and user.is_active:
                return self._identity(user)
            return None
        entry = self._static(username)
        if entry is None:
            # As Django's ModelBackend does: spend a hash on unknown users too, so the response
            # time does not tell which usernames exist.
            get_user_model()().set_password(password)
            return None
        if bcrypt.checkpw(password.encode(), entry.hash.encode()):
            return self._static_identity(entry)
        return None

    def refresh(self, identity: Identity) -> Identity | None:
        if identity.connector_data.get("kind") == KIND_STATIC:
            for entry in self.static_passwords:
                if entry.user_id == identity.user_id:
                    return self._static_identity(entry)
            return None
        user = get_user_model().objects.filter(pk=identity.user_id).first()
        if user is None or not user.is_active:
            return None
        return self._identity(user)
