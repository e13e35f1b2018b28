"""Trusted authentication's pure parts: keys, request validation, bearer checks, responses."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from gateway.policy.errors import BadRequest, Problem, Unauthenticated, Unprocessable
from gateway.policy.model import Identity, Role, TokenType, User
from gateway.policy.trusted import (
    BearerCredential,
    BearerRecord,
    TokenRequest,
    bearer_identity,
    key_matches,
    new_generation,
    new_secret_key,
    public_id,
    revoke_request_from_json,
    token_request_from_form,
    token_request_from_json,
    token_response,
    user_id,
    validity_seconds,
    workspace_of,
)

NOW = 1_800_000_000.0
HASH = "ab" * 32
BOB = User("bob", Role.MEMBER, "acme", NOW - 100)
RECORD = BearerRecord(HASH, "bob", "acme", "g1", NOW, NOW + 300)
LIMITS: dict[str, Any] = {"default_workspace": "default", "default_validity": 300,
                         "max_validity": 3600}


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


@pytest.mark.parametrize(("org_id", "workspace"), [
    (None, "default"), ("acme", "acme"), (0, "0"), (42, "42"), ("42", "42"), ("Acme", "acme"), ("ACME", "acme"),
])
def test_workspace_of_accepts_strings_and_integers(org_id: object, workspace: str) -> None:
    """org_id names the workspace, as a string or an integer; absent means the default."""
    assert workspace_of(org_id, "default") == workspace


@pytest.mark.parametrize("org_id", [True, 1.5, [], {}, "", "-1", "../x", "a b", -3])
def test_workspace_of_refuses_other_values(org_id: object) -> None:
    """Anything else is 422 naming org_id."""
    with pytest.raises(Unprocessable) as info:
        workspace_of(org_id, "default")
    assert info.value.extra["field"] == "org_id"


@pytest.mark.parametrize(("requested", "result", "error"), [
    (None, 300, None), (1, 1, None), (3600, 3600, None),
    (0, None, BadRequest), (-5, None, BadRequest), (3601, None, BadRequest),
    ("60", None, Unprocessable), (60.0, None, Unprocessable), (True, None, Unprocessable),
])
def test_validity_seconds(requested: object, result: int | None,
                          error: type[Problem] | None) -> None:
    """The default when absent; 1..max allowed; outside is 400; a non-integer is 422."""
    if error is None:
        assert validity_seconds(requested, default=300, maximum=3600) == result
    else:
        with pytest.raises(error) as info:
            validity_seconds(requested, default=300, maximum=3600)
        assert info.value.extra["field"] == "validity_time_in_sec"


def test_json_request_with_every_field() -> None:
    """A full v2 body becomes a request; unknown fields are ignored."""
    body = {"username": "bob", "secret_key": "k", "org_id": 7, "validity_time_in_sec": 60,
            "auto_create": True, "persist_option": "NONE"}
    assert token_request_from_json(body, **LIMITS) == TokenRequest("bob", "k", "7", 60, True)
    assert token_request_from_json({"username": "bob", "secret_key": "k"}, **LIMITS) == \
        TokenRequest("bob", "k", "default", 300, False)


@pytest.mark.parametrize(("body", "error", "field"), [
    ([], BadRequest, None),
    ("x", BadRequest, None),
    (None, BadRequest, None),
    ({"secret_key": "k"}, Unprocessable, "username"),
    ({"username": 1, "secret_key": "k"}, Unprocessable, "username"),
    ({"username": " bob", "secret_key": "k"}, Unprocessable, "username"),
    ({"username": "bob"}, Unprocessable, "secret_key"),
    ({"username": "bob", "secret_key": ""}, Unprocessable, "secret_key"),
    ({"username": "bob", "secret_key": ["k"]}, Unprocessable, "secret_key"),
    ({"username": "bob", "secret_key": "k", "auto_create": 1}, Unprocessable, "auto_create"),
    ({"username": "bob", "secret_key": "k", "validity_time_in_sec": 0}, BadRequest,
     "validity_time_in_sec"),
])
def test_json_request_refusals(body: Any, error: type[Problem], field: str | None) -> None:
    """Not an object is 400; a missing or wrong field is named, and the key is never echoed."""
    with pytest.raises(error) as info:
        token_request_from_json(body, **LIMITS)
    assert info.value.extra.get("field") == field
    assert "'k'" not in info.value.detail


def test_form_request() -> None:
    """The v1 form: FULL access (any case, or absent), org_id optional, default validity."""
    form = {"username": "bob", "secret_key": "k", "access_level": "full", "org_id": "acme"}
    assert token_request_from_form(form, default_workspace="default", default_validity=300) \
        == TokenRequest("bob", "k", "acme", 300)
    bare = token_request_from_form({"username": "bob", "secret_key": "k", "org_id": ""},
                                   default_workspace="default", default_validity=300)
    assert bare.workspace == "default"
    with pytest.raises(Unprocessable) as info:
        token_request_from_form({"username": "bob", "secret_key": "k",
                                 "access_level": "REPORT_BOOK_VIEW"},
                                default_workspace="default", default_validity=300)
    assert info.value.extra["field"] == "access_level"


@pytest.mark.parametrize(("body", "token", "key", "workspace"), [
    ({"token": "t"}, "t", None, "default"),
    ({}, None, None, "default"),
    ({"token": "t", "secret_key": "k", "org_id": "acme"}, "t", "k", "acme"),
    ({"token": "", "user_identifier": "bob"}, None, None, "default"),
])
def test_revoke_request(body: dict[str, Any], token: str | None, key: str | None,
                        workspace: str) -> None:
    """A revoke body names the token and, optionally, the key and workspace."""
    req = revoke_request_from_json(body, default_workspace="default")
    assert (req.token, req.secret_key, req.workspace) == (token, key, workspace)


def test_secrets_stay_out_of_reprs() -> None:
    """Neither the key nor the hash shows in a value's repr."""
    req = TokenRequest("bob", "sekrit-key", "acme", 60)
    assert "sekrit-key" not in repr(req)
    assert HASH not in repr(RECORD)
    with pytest.raises(Unprocessable):
        revoke_request_from_json({"token": 5}, default_workspace="default")
