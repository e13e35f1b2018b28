"""Credential formats: type prefix, random body, CRC32 checksum in base62.

In the spirit of GitHub's token formats: the prefix tells a reader (and a
secret scanner) what a string is, and the checksum lets the gateway refuse a
mistyped or made-up credential without a store lookup.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

from gateway.policy.model import TokenType

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECKSUM_LEN = 6  # 62**6 > 2**32, so any CRC32 fits

TOKEN_PREFIXES: dict[TokenType, str] = {
    TokenType.WORKSPACE: "tgw_",
    TokenType.MEMBER: "tgm_",
    TokenType.PERSONAL: "tgp_",
    TokenType.TRUSTED: "tgb_",
}
SECRET_PREFIX = "tgs_"
TOKEN_RANDOM_LEN = 16  # public identifier: ~95 bits, unguessable enough to be a key
SECRET_RANDOM_LEN = 28  # 28 * log2(62) = 166.7 bits >= 160
BEARER_RANDOM_LEN = 32  # 190 bits

# Imported legacy personal tokens keep their original values, so they are
# recognised by a looser shape (still checked before any lookup).
LEGACY_TOKEN = re.compile(r"[A-Za-z0-9]{8,64}")
LEGACY_SECRET = re.compile(r"[A-Za-z0-9_\-]{16,128}")


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    return "".join(reversed(out))


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 of ``body``."""
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LEN)


def _random(n: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(n))


def _make(prefix: str, length: int) -> str:
    body = prefix + _random(length)
    return body + checksum(body)


def _valid(value: str, prefix: str, length: int) -> bool:
    if len(value) != len(prefix) + length + CHECKSUM_LEN or not value.startswith(prefix):
        return False
    body, check = value[:-CHECKSUM_LEN], value[-CHECKSUM_LEN:]
    if not all(c in BASE62 for c in value[len(prefix):]):
        return False
    return checksum(body) == check


def new_token(token_type: TokenType) -> str:
    """A new public token id for ``token_type``."""
    if token_type is TokenType.TRUSTED:
        raise ValueError("trusted tokens are bearer tokens; use new_bearer_token")
    return _make(TOKEN_PREFIXES[token_type], TOKEN_RANDOM_LEN)


def new_secret() -> str:
    """A new private secret (shown once, stored only as a keyed hash)."""
    return _make(SECRET_PREFIX, SECRET_RANDOM_LEN)


def new_bearer_token() -> str:
    """A new trusted-auth bearer token."""
    return _make(TOKEN_PREFIXES[TokenType.TRUSTED], BEARER_RANDOM_LEN)


@dataclass(frozen=True, slots=True)
class TokenShape:
    """What the shape of a public token says about it."""

    type: TokenType | None  # None: a legacy (imported personal) token


def token_shape(token: str) -> TokenShape | None:
    """Classify a presented public token, or None if it cannot be one of ours."""
    for token_type in (TokenType.WORKSPACE, TokenType.MEMBER, TokenType.PERSONAL):
        if _valid(token, TOKEN_PREFIXES[token_type], TOKEN_RANDOM_LEN):
            return TokenShape(token_type)
    if token.startswith("tg") and token[3:4] == "_":
        return None  # our prefix with a bad body or checksum: never look it up
    if LEGACY_TOKEN.fullmatch(token):
        return TokenShape(None)
    return None


def secret_well_formed(secret: str, *, legacy: bool) -> bool:
    """True if the secret has our shape (or, for a legacy token, the legacy shape)."""
    if _valid(secret, SECRET_PREFIX, SECRET_RANDOM_LEN):
        return True
    return legacy and LEGACY_SECRET.fullmatch(secret) is not None


def bearer_well_formed(token: str) -> bool:
    """True if ``token`` has the shape of a trusted-auth bearer token."""
    return _valid(token, TOKEN_PREFIXES[TokenType.TRUSTED], BEARER_RANDOM_LEN)
