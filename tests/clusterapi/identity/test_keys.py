"""Signing keys rotate; old public keys stay published while their tokens may be valid."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from clusterapi.identity import keys
from clusterapi.identity.models import SigningKey
from clusterapi.identity.tasks import rotate_keys_task
from tests.clusterapi.identity.helpers import get, tokens_for, verify

pytestmark = pytest.mark.django_db


def kids(browser: Client) -> list[str]:
    return [k["kid"] for k in get(browser, "/dex/keys").json()["keys"]]


def age_keys(hours: float) -> None:
    for row in SigningKey.objects.all():
        row.created -= timedelta(hours=hours)
        if row.retired is not None:
            row.retired -= timedelta(hours=hours)
        row.save()


def test_jwks_publishes_an_rs256_key(browser: Client) -> None:
    (entry,) = get(browser, "/dex/keys").json()["keys"]
    assert entry["kty"] == "RSA" and entry["alg"] == "RS256" and entry["use"] == "sig"
    assert "d" not in entry and "p" not in entry  # public parts only
    assert jwt.PyJWK(entry).key.key_size == 2048


def test_rotation_keeps_old_keys_until_their_tokens_expire(browser: Client, alice: User) -> None:
    before = tokens_for(browser, "alice", "alice-pass-1")
    old_kid = jwt.get_unverified_header(before["id_token"])["kid"]
    age_keys(7)  # past the 6 h rotation period
    assert rotate_keys_task() != old_kid
    after = tokens_for(Client(), "alice", "alice-pass-1")
    new_kid = jwt.get_unverified_header(after["id_token"])["kid"]
    assert new_kid != old_kid
    assert kids(browser) == [new_kid, old_kid]
    assert verify(browser, before["id_token"])["email"] == "alice@example.com"
    assert verify(browser, after["id_token"])["email"] == "alice@example.com"
    # 25 h later every token of the old key has expired (idTokens: 24 h): it is dropped.
    age_keys(25)
    SigningKey.objects.filter(kid=new_kid).update(created=timezone.now())
    rotate_keys_task()
    assert kids(browser) == [new_kid]


def test_rotation_is_lazy_on_use(browser: Client) -> None:
    first = kids(browser)
    age_keys(6.5)
    assert kids(browser)[1:] == first and kids(browser)[0] != first[0]


def test_two_rotations_at_once_make_one_key(monkeypatch: pytest.MonkeyPatch) -> None:
    current = keys.rotate()
    age_keys(7)
    make = keys._new_row
    competitor: list[SigningKey] = []

    def racing(generation: int, now: object) -> SigningKey:
        # Another process rotates between our read of the current key and our insert.
        if not competitor:
            competitor.append(make(generation, timezone.now()))
            competitor[0].save()
        return make(generation, timezone.now())

    monkeypatch.setattr(keys, "_new_row", racing)
    winner = keys.rotate()
    assert winner.kid == competitor[0].kid
    assert winner.generation == current.generation + 1
    assert SigningKey.objects.filter(generation=winner.generation).count() == 1
