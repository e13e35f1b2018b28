"""Trusted authentication, the pure parts: keys, bearer checks, response bodies.

A workspace's ``secret_key`` mints short-lived bearer tokens for any of its
users, as ThoughtSpot's trusted authentication does. This module only decides
on values (``now`` is passed in); ``gateway.trusted`` does the store and
crypto calls around it. Request bodies are validated in
:mod:`gateway.policy.tokenrequests`.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.authheader import INVALID
from gateway.policy.errors import Unauthenticated
from gateway.policy.model import Identity, TokenType, User

PUBLIC_ID_PREFIX = "tgt_"
PUBLIC_ID_HEX = 24  # 96 bits of the keyed hash: unique, and no use to a thief
USER_ID_NAMESPACE = uuid.UUID("5b1f7f3e-6c1d-4c8e-9a57-3f0d2a9b7c41")
FULL_ACCESS = "FULL"
TOKEN_TYPE = "BEARER"  # /auth/token/validate's token_type, as ThoughtSpot spells it


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A workspace's trusted-auth key as stored: encrypted, with its generation.

    Each enable makes a new ``generation``; bearer tokens carry the one they
    were minted under, so a disabled or re-enabled key refuses them at once.
    ``org_id`` is the workspace's numeric ThoughtSpot org id, if it has one:
    token requests naming that number find this workspace.
    """

    workspace: str
    generation: str
    key_encrypted: str = field(repr=False)
    enabled_at: float
    enabled_by: str
    org_id: int | None = None


@dataclass(frozen=True, slots=True)
class BearerRecord:
    """A minted bearer token as stored: its keyed hash, never the token.

    ``generation`` is the workspace key's, ``user_generation`` the user's
    (``""`` for tokens minted before users had one).
    """

    token_hash: str = field(repr=False)
    user: str
    workspace: str
    generation: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    user_generation: str = ""

    @property
    def public_id(self) -> str:
        """The token's non-secret name, for headers, logs and audit events."""
        return public_id(self.token_hash)


@dataclass(frozen=True, slots=True)
class BearerCredential:
    """What validating a bearer needs, from one store call: the record, its
    user (None if removed) and the workspace's current key generation (None
    when trusted authentication is disabled)."""

    record: BearerRecord
    owner: User | None
    generation: str | None


def new_secret_key() -> str:
    """A new ``secret_key``: UUID-shaped, 122 random bits (a version-4 UUID)."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))


def new_generation() -> str:
    """A new key generation id (not secret)."""
    return secrets.token_hex(8)


def key_context(workspace: str, generation: str) -> str:
    """The AES-GCM associated data binding an encrypted key to its workspace."""
    return f"tokengate/trusted-auth/{workspace}/{generation}"


def key_matches(presented: str, stored: str) -> bool:
    """Compare a presented ``secret_key`` with the stored one in constant time."""
    return hmac.compare_digest(presented.encode(), stored.encode())


def public_id(token_hash: str) -> str:
    """A bearer's public id: a prefix of its keyed hash (never the bearer itself)."""
    return PUBLIC_ID_PREFIX + token_hash[:PUBLIC_ID_HEX]


def user_id(user: User) -> str:
    """A stable UUID for a user record (ThoughtSpot's ``valid_for_user_id``)."""
    return str(uuid.uuid5(USER_ID_NAMESPACE, f"{user.username}\0{user.created_at!r}"))


def same_user(record: BearerRecord, owner: User) -> bool:
    """Whether ``owner`` is the very user the bearer was minted for, not a later namesake.

    A removed and re-added user has a new generation, so the old bearers stay
    dead. Users and bearers from before generations existed both carry
    ``""``; for them a bearer minted before the user record was created
    belongs to an earlier namesake.
    """
    if owner.generation or record.user_generation:
        return owner.generation == record.user_generation
    return record.created_at >= owner.created_at


def bearer_identity(credential: BearerCredential | None, *, now: float) -> Identity:
    """The identity a bearer acts as, or 401 with the reason.

    Only a caller holding the real token gets past ``unknown`` (the lookup is
    by its keyed hash), so later details may say what is wrong.
    """
    if credential is None:
        raise Unauthenticated(INVALID, reason="unknown")
    record = credential.record
    if record.revoked_at is not None:
        raise Unauthenticated("this bearer token has been revoked", reason="revoked")
    if now >= record.expires_at:
        raise Unauthenticated("this bearer token has expired; request a new one",
                              reason="expired")
    if credential.generation is None:
        raise Unauthenticated("trusted authentication is disabled for this workspace",
                              reason="disabled_feature")
    owner = credential.owner
    if (credential.generation != record.generation or owner is None
            or owner.workspace != record.workspace or not same_user(record, owner)):
        raise Unauthenticated("this bearer token has been revoked", reason="revoked")
    return Identity(
        user=owner.username,
        role=owner.role,
        token_type=TokenType.TRUSTED,
        token=record.public_id,
        workspace=owner.workspace,
    )


def token_response(token: str, user: User, record: BearerRecord) -> dict[str, Any]:
    """The v2 ``/auth/token/full`` response body."""
    return {
        "token": token,
        "creation_time_in_millis": int(record.created_at * 1000),
        "expiration_time_in_millis": int(record.expires_at * 1000),
        "valid_for_user_id": user_id(user),
        "valid_for_username": user.username,
    }


def validation_response(user: User, record: BearerRecord, org_id: int | None) -> dict[str, Any]:
    """The v2 ``/auth/token/validate`` body (ThoughtSpot's TokenValidationResponse).

    Exactly the documented fields: generated ThoughtSpot clients refuse
    unknown ones. ``scope.org_id`` only when the workspace has a numeric id.
    """
    scope: dict[str, Any] = {"access_type": FULL_ACCESS}
    if org_id is not None:
        scope["org_id"] = org_id
    return {
        "creation_time_in_millis": int(record.created_at * 1000),
        "expiration_time_in_millis": int(record.expires_at * 1000),
        "scope": scope,
        "valid_for_user_id": user_id(user),
        "token_type": TOKEN_TYPE,
    }
