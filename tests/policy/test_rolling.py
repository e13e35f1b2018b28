"""Rolling a secret, decided purely: which secret matches, and until when."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import pytest

from gateway.policy.errors import Unprocessable
from gateway.policy.model import TokenRecord, TokenType
from gateway.policy.rolling import (
    DEFAULT_GRACE_SECONDS,
    MAX_GRACE_SECONDS,
    SecretMatch,
    grace_seconds,
    secret_match,
    trusted_until,
)

NOW = 1_800_000_000.0


def h(secret: str) -> str:
    """A stand-in keyed hash (the policy compares hashes; it never computes them)."""
    return hashlib.sha256(secret.encode()).hexdigest()


RECORD = TokenRecord(token="tgw_x", type=TokenType.WORKSPACE, name="n", owner="workspace:acme",
                     workspace="acme", created_by="alice", created_at=NOW - 10,
                     expires_at=NOW + 86400, secret_hash=h("new"),
                     previous_secret_hash=h("old"), previous_secret_until=NOW + 60,
                     rolled_at=NOW)


@pytest.mark.parametrize(("presented", "now", "expected"), [
    ("new", NOW, SecretMatch.CURRENT),
    ("new", NOW + 10**6, SecretMatch.CURRENT),
    ("old", NOW, SecretMatch.PREVIOUS),
    ("old", NOW + 59.999, SecretMatch.PREVIOUS),
    ("old", NOW + 60, None),  # the grace period ends exactly there
    ("old", NOW + 61, None),
    ("other", NOW, None),
])
def test_the_old_secret_matches_only_inside_its_grace_period(
        presented: str, now: float, expected: SecretMatch | None) -> None:
    """The new secret always matches; the old one strictly before previous_secret_until."""
    assert secret_match(RECORD, h(presented), now) is expected


def test_a_record_never_rolled_knows_only_its_secret() -> None:
    """Without a previous hash an empty or wrong hash never matches."""
    plain = replace(RECORD, previous_secret_hash="", previous_secret_until=None, rolled_at=None)
    assert secret_match(plain, h("new"), NOW) is SecretMatch.CURRENT
    assert secret_match(plain, h("old"), NOW) is None
    assert secret_match(plain, "", NOW) is None


def test_a_remembered_old_secret_is_trusted_only_until_its_grace_ends() -> None:
    """The authenticator's memo of a verified secret ends with the grace period."""
    assert trusted_until(RECORD, SecretMatch.PREVIOUS) == NOW + 60
    assert trusted_until(RECORD, SecretMatch.CURRENT) == math.inf


@pytest.mark.parametrize(("value", "expected"), [
    (None, DEFAULT_GRACE_SECONDS),
    (0, 0),
    (1, 1),
    (MAX_GRACE_SECONDS, 7 * 86400),
])
def test_grace_periods_from_none_to_seven_days(value: int | None, expected: int) -> None:
    """Absent means a day; 0 ends the old secret at once; a week is the most."""
    assert grace_seconds(value) == expected


@pytest.mark.parametrize("value", [-1, MAX_GRACE_SECONDS + 1, 1.5, True, "60"])
def test_other_grace_periods_are_refused_naming_the_field(value: object) -> None:
    """Negative, past a week, fractional, boolean or text: a 422 naming grace_seconds."""
    with pytest.raises(Unprocessable) as caught:
        grace_seconds(value)
    assert caught.value.extra["field"] == "grace_seconds"
