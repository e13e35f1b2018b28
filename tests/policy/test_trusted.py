"""Trusted authentication's pure parts: keys, bearer checks, response bodies."""

from __future__ import annotations

import re
import uuid

import pytest

from gateway.policy.errors import Unauthenticated
from gateway.policy.model import Identity, Role, TokenType, User
from gateway.policy.trusted import (
    BearerCredential,
    BearerRecord,
    TrustedKey,
    bearer_identity,
    key_matches,
    new_generation,
    new_secret_key,
    public_id,
    token_response,
    user_id,
    validation_response,
)

NOW = 1_800_000_000.0
HASH = "ab" * 32
BOB = User("bob", Role.MEMBER, "acme", NOW - 100)
RECORD = BearerRecord(HASH, "bob", "acme", "g1", NOW, NOW + 300)


def test_secret_keys_are_version_4_uuids_with_122_random_bits() -> None:
    """A key is a canonical v4 UUID, and a thousand keys are all different."""
    keys = {new_secret_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in list(keys)[:50]:
        parsed = uuid.UUID(key)
        assert str(parsed) == key and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_generations_differ() -> None:
    """Each enable gets its own generation id."""
    assert len({new_generation() for _ in range(100)}) == 100


@pytest.mark.parametrize(("presented", "stored", "ok"), [
    ("k-1", "k-1", True),
    ("k-1", "k-2", False),
    ("", "k-1", False),
    ("k-1x", "k-1", False),
    ("ключ", "ключ", True),
])
def test_key_matches(presented: str, stored: str, ok: bool) -> None:
    """Keys match only when equal (compared in constant time)."""
    assert key_matches(presented, stored) is ok


def test_public_id_is_short_and_not_the_hash() -> None:
    """The public id names a bearer without being its full hash."""
    pid = public_id(HASH)
    assert re.fullmatch(r"tgt_[0-9a-f]{24}", pid) and HASH not in pid
    assert RECORD.public_id == pid


def test_user_id_is_stable_per_user_record() -> None:
    """The same user record gets the same UUID; a re-created user gets another."""
    assert user_id(BOB) == user_id(User("bob", Role.ADMIN, "other", BOB.created_at))
    assert user_id(BOB) != user_id(User("bob", Role.MEMBER, "acme", BOB.created_at + 1))
    uuid.UUID(user_id(BOB))


def cred(record: BearerRecord = RECORD, owner: User | None = BOB,
         generation: str | None = "g1") -> BearerCredential:
    return BearerCredential(record, owner, generation)


@pytest.mark.parametrize(("credential", "now", "reason"), [
    (None, NOW, "unknown"),
    (cred(BearerRecord(HASH, "bob", "acme", "g1", NOW, NOW + 300, revoked_at=NOW)), NOW,
     "revoked"),
    (cred(), NOW + 300, "expired"),
    (cred(), NOW + 301, "expired"),
    (cred(generation=None), NOW, "disabled_feature"),
    (cred(generation="g2"), NOW, "revoked"),
    (cred(owner=None), NOW, "revoked"),
    (cred(owner=User("bob", Role.MEMBER, "other", NOW)), NOW, "revoked"),
])
def test_bearer_refusals(credential: BearerCredential | None, now: float, reason: str) -> None:
    """Unknown, revoked, expired, disabled, rotated and orphaned bearers are 401s."""
    with pytest.raises(Unauthenticated) as info:
        bearer_identity(credential, now=now)
    assert info.value.reason == reason
    assert HASH not in info.value.detail


def test_bearer_identity_is_the_users() -> None:
    """A live bearer acts as its user, with the user's role and workspace, typed trusted."""
    admin = User("bob", Role.ADMIN, "acme", NOW)
    assert bearer_identity(cred(owner=admin), now=NOW + 299.9) == Identity(
        user="bob", role=Role.ADMIN, token_type=TokenType.TRUSTED, token=public_id(HASH),
        workspace="acme")


def test_token_response_has_the_v2_fields() -> None:
    """The v2 body has the five ThoughtSpot fields, times in milliseconds."""
    body = token_response("tgb_x", BOB, RECORD)
    assert body == {
        "token": "tgb_x",
        "creation_time_in_millis": int(NOW * 1000),
        "expiration_time_in_millis": int((NOW + 300) * 1000),
        "valid_for_user_id": user_id(BOB),
        "valid_for_username": "bob",
    }


def test_validation_response_has_thoughtspots_fields() -> None:
    """The validate body is ThoughtSpot's TokenValidationResponse, org id in the scope if set."""
    assert validation_response(BOB, RECORD, 0) == {
        "creation_time_in_millis": int(NOW * 1000),
        "expiration_time_in_millis": int((NOW + 300) * 1000),
        "scope": {"access_type": "FULL", "org_id": 0},
        "valid_for_user_id": user_id(BOB),
        "token_type": "BEARER",
    }
    assert validation_response(BOB, RECORD, None)["scope"] == {"access_type": "FULL"}


def test_secrets_stay_out_of_reprs() -> None:
    """Neither the hash nor an encrypted key shows in a value's repr."""
    assert HASH not in repr(RECORD)
    key = TrustedKey("acme", "g1", "sekrit-enc", NOW, "operator", org_id=3)
    assert "sekrit-enc" not in repr(key)
