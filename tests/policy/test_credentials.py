"""Credential formats: prefixes, entropy, checksums."""

from __future__ import annotations

import math

import pytest

from gateway.policy import credentials as c
from gateway.policy.model import TokenType


@pytest.mark.parametrize("token_type", [TokenType.WORKSPACE, TokenType.MEMBER, TokenType.PERSONAL])
def test_new_tokens_have_their_type_prefix_and_are_recognised(token_type: TokenType) -> None:
    """A new token carries its type's prefix and classifies as that type."""
    token = c.new_token(token_type)
    assert token.startswith(c.TOKEN_PREFIXES[token_type])
    shape = c.token_shape(token)
    assert shape is not None and shape.type is token_type


def test_secret_has_at_least_160_random_bits_and_a_checksum() -> None:
    """The secret's random part carries >= 160 bits and ends with a 6-char checksum."""
    secret = c.new_secret()
    assert secret.startswith("tgs_")
    assert c.SECRET_RANDOM_LEN * math.log2(62) >= 160
    assert len(secret) == 4 + c.SECRET_RANDOM_LEN + 6
    assert c.checksum(secret[:-6]) == secret[-6:]
    assert c.secret_well_formed(secret, legacy=False)


def test_secrets_are_unique() -> None:
    """Two secrets never collide (randomness is real)."""
    assert len({c.new_secret() for _ in range(200)}) == 200


def _flip_last(value: str) -> str:
    last = value[-1]
    return value[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    "mutate",
    [
        _flip_last,  # checksum wrong
        lambda v: v[:-1],  # too short
        lambda v: v + "A",  # too long
        lambda v: "tgx_" + v[4:],  # unknown prefix
        lambda v: v[:6] + "!" + v[7:],  # not base62
    ],
)
def test_bad_checksum_length_or_prefix_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    """A secret or token with a bad checksum, length or prefix is not well formed."""
    assert not c.secret_well_formed(mutate(c.new_secret()), legacy=False)
    assert c.token_shape(mutate(c.new_token(TokenType.WORKSPACE))) is None


def test_checksum_is_crc32_in_base62() -> None:
    """The checksum is CRC32 of the body, 6 base62 digits, left-padded."""
    import zlib

    body = "tgs_" + "a" * 28
    n = zlib.crc32(body.encode())
    digits = c.checksum(body)
    value = 0
    for ch in digits:
        value = value * 62 + c.BASE62.index(ch)
    assert value == n and len(digits) == 6


@pytest.mark.parametrize(
    ("token", "legacy"),
    [("abc123def456", True), ("A" * 64, True), ("short", False), ("a" * 65, False),
     ("has-dash-x", False), ("tgw_looksOursButBroken", False)],
)
def test_legacy_personal_token_shape(token: str, legacy: bool) -> None:
    """Imported personal tokens keep a looser shape; ours with a bad checksum never pass."""
    shape = c.token_shape(token)
    assert (shape is not None and shape.type is None) is legacy


def test_bearer_tokens_are_well_formed_and_distinct_from_basic_tokens() -> None:
    """A bearer token has its own prefix and checksum."""
    bearer = c.new_bearer_token()
    assert bearer.startswith("tgb_") and c.bearer_well_formed(bearer)
    assert not c.bearer_well_formed(_flip_last(bearer))
    assert c.token_shape(bearer) is None
    with pytest.raises(ValueError):
        c.new_token(TokenType.TRUSTED)
