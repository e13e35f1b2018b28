"""Parse the Authorization header into presented credentials.

Everything that is not exactly a well-formed Basic or Bearer credential of
tokengate's shape is refused here, before any store lookup, with the same
generic detail so the response never hints at what was wrong.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from dataclasses import dataclass, field

from gateway.policy.credentials import bearer_well_formed, secret_well_formed, token_shape
from gateway.policy.errors import Unauthenticated
from gateway.policy.model import TokenType

MAX_AUTHORIZATION = 1024
INVALID = "invalid credentials"


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """A public token and its secret, from ``Authorization: Basic``."""

    token: str
    secret: str = field(repr=False)
    shape: TokenType | None  # None: legacy personal token shape


@dataclass(frozen=True, slots=True)
class BearerCredentials:
    """A trusted-auth bearer token, from ``Authorization: Bearer``."""

    token: str = field(repr=False)


def _malformed() -> Unauthenticated:
    return Unauthenticated(INVALID, reason="malformed")


def parse_authorization(value: str | None) -> BasicCredentials | BearerCredentials:
    """Parse one Authorization header value, raising 401 for anything malformed."""
    if not value:
        raise Unauthenticated("authentication required", reason="malformed")
    if len(value) > MAX_AUTHORIZATION:
        raise _malformed()
    scheme, _, param = value.strip().partition(" ")
    param = param.strip()
    scheme = scheme.lower()
    if scheme == "bearer":
        if not bearer_well_formed(param):
            raise _malformed()
        return BearerCredentials(param)
    if scheme != "basic" or not param:
        raise _malformed()
    try:
        decoded = b64decode(param, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise _malformed() from None
    token, colon, secret = decoded.partition(":")
    if not colon or not token or not secret:
        raise _malformed()
    shape = token_shape(token)
    if shape is None or not secret_well_formed(secret, legacy=shape.type is None):
        raise _malformed()
    return BasicCredentials(token, secret, shape.type)
