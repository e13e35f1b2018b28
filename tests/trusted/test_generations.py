"""A bearer is bound to the user record it was minted for, not to the username (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.policy.errors import Unauthenticated
from gateway.policy.model import Role, User, new_user_generation
from gateway.policy.trusted import BearerCredential, BearerRecord, bearer_identity, same_user

NOW = 1_800_000_000.0
RECORD = BearerRecord("ab" * 32, "mo", "acme", "g1", NOW, NOW + 300, user_generation="u1")
MO = User("mo", Role.MEMBER, "acme", NOW - 100, generation="u1")


@pytest.mark.parametrize(("record_gen", "user_gen", "minted_at", "user_created", "same"), [
    ("u1", "u1", NOW, NOW - 100, True),       # the user it was minted for
    ("u1", "u2", NOW, NOW - 100, False),      # removed and re-added: a new generation
    ("u1", "u2", NOW, NOW + 100, False),
    ("", "u2", NOW, NOW - 100, False),        # an old bearer, a user re-added since upgrading
    ("u1", "", NOW, NOW - 100, False),        # cannot happen, but never matches
    ("", "", NOW, NOW - 100, True),           # both from before generations: minted after
    ("", "", NOW, NOW, True),
    ("", "", NOW, NOW + 1, False),            # ... or before the user record was created
])
def test_same_user_compares_generations_else_creation_time(
        record_gen: str, user_gen: str, minted_at: float, user_created: float,
        same: bool) -> None:
    """Generations decide when either side has one; else a bearer older than the user is not
    that user's."""
    record = replace(RECORD, user_generation=record_gen, created_at=minted_at)
    user = replace(MO, generation=user_gen, created_at=user_created)
    assert same_user(record, user) is same


@pytest.mark.parametrize(("owner", "outcome"), [
    (MO, "mo/member"),
    (replace(MO, role=Role.ADMIN), "mo/admin"),
    (replace(MO, generation="u2"), "revoked"),
    (replace(MO, generation="u2", role=Role.ADMIN), "revoked"),
    (None, "revoked"),
])
def test_a_re_added_namesake_never_revives_a_bearer(owner: User | None, outcome: str) -> None:
    """A bearer acts as its user while that very user exists; a namesake added later,
    whatever its role, gets 401 revoked."""
    credential = BearerCredential(RECORD, owner, "g1")
    if outcome == "revoked":
        with pytest.raises(Unauthenticated) as err:
            bearer_identity(credential, now=NOW + 1)
        assert err.value.reason == "revoked"
    else:
        identity = bearer_identity(credential, now=NOW + 1)
        assert f"{identity.user}/{identity.role.value}" == outcome


def test_user_generations_differ() -> None:
    """Every new user record gets its own generation."""
    assert len({new_user_generation() for _ in range(100)}) == 100
