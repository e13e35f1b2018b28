"""Trusted authentication, the pure parts: keys, token requests, bearer checks.

A workspace's ``secret_key`` mints short-lived bearer tokens for any of its
users, as ThoughtSpot's trusted authentication does. This module only decides
on values (``now`` is passed in); ``gateway.trusted`` does the store and
crypto calls around it.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.authheader import INVALID
from gateway.policy.errors import BadRequest, Unauthenticated, Unprocessable
from gateway.policy.model import Identity, TokenType, User
from gateway.policy.permissions import USERNAME, workspace_name

PUBLIC_ID_PREFIX = "tgt_"
PUBLIC_ID_HEX = 24  # 96 bits of the keyed hash: unique, and no use to a thief
USER_ID_NAMESPACE = uuid.UUID("5b1f7f3e-6c1d-4c8e-9a57-3f0d2a9b7c41")
FULL_ACCESS = "FULL"


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A workspace's trusted-auth key as stored: encrypted, with its generation.

    Each enable makes a new ``generation``; bearer tokens carry the one they
    were minted under, so a disabled or re-enabled key refuses them at once.
    """

    workspace: str
    generation: str
    key_encrypted: str = field(repr=False)
    enabled_at: float
    enabled_by: str


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


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A validated request to mint a bearer token."""

    username: str
    secret_key: str = field(repr=False)
    workspace: str
    validity_seconds: int
    auto_create: bool = False


@dataclass(frozen=True, slots=True)
class RevokeRequest:
    """A validated request to revoke a bearer token.

    ``token`` None means the bearer in the Authorization header; with a
    ``secret_key`` the key of ``workspace`` authorises the revocation.
    """

    token: str | None = field(repr=False)
    secret_key: str | None = field(repr=False)
    workspace: str


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


# --- request validation -----------------------------------------------------
# Error details name the field and never repeat a value: a body may hold a key.


def _invalid(name: str, what: str) -> Unprocessable:
    return Unprocessable(f"{name}: {what}", extra={"field": name})


def workspace_of(org_id: object, default: str) -> str:
    """The workspace an ``org_id`` (string or integer) names; the default if absent."""
    if org_id is None:
        return default
    if isinstance(org_id, bool) or not isinstance(org_id, (int, str)):
        raise _invalid("org_id", "must be a string or an integer")
    name = workspace_name(str(org_id))  # "Acme" is "acme", as everywhere
    if name is None:
        raise _invalid("org_id", "not a valid workspace name")
    return name


def validity_seconds(requested: object, *, default: int, maximum: int) -> int:
    """The token lifetime: the default if absent, else an integer in ``1..maximum``."""
    if requested is None:
        return default
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise _invalid("validity_time_in_sec", "must be an integer")
    if not 1 <= requested <= maximum:
        raise BadRequest(f"validity_time_in_sec: must be between 1 and {maximum}",
                         extra={"field": "validity_time_in_sec"})
    return requested


def _username(value: object) -> str:
    if value is None:
        raise _invalid("username", "required")
    if not isinstance(value, str):
        raise _invalid("username", "must be a string")
    if not USERNAME.fullmatch(value):
        raise _invalid("username", "1-64 of letters, digits and _.@+- (not first)")
    return value


def _secret_key(value: object, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if value is None or value == "":
        raise _invalid("secret_key", "required")
    if not isinstance(value, str):
        raise _invalid("secret_key", "must be a string")
    return value


def _object(data: object) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def token_request_from_json(data: object, *, default_workspace: str, default_validity: int,
                            max_validity: int) -> TokenRequest:
    """Validate a v2 ``/auth/token/full`` body (unknown fields are ignored, as ThoughtSpot's)."""
    body = _object(data)
    auto_create = body.get("auto_create")
    if auto_create is not None and not isinstance(auto_create, bool):
        raise _invalid("auto_create", "must be a boolean")
    key = _secret_key(body.get("secret_key"))
    assert key is not None
    return TokenRequest(
        username=_username(body.get("username")),
        secret_key=key,
        workspace=workspace_of(body.get("org_id"), default_workspace),
        validity_seconds=validity_seconds(body.get("validity_time_in_sec"),
                                          default=default_validity, maximum=max_validity),
        auto_create=bool(auto_create),
    )


def token_request_from_form(fields: Mapping[str, str], *, default_workspace: str,
                            default_validity: int) -> TokenRequest:
    """Validate a v1 ``session/auth/token`` form (``access_level`` FULL only)."""
    access = fields.get("access_level") or FULL_ACCESS
    if access.upper() != FULL_ACCESS:
        raise _invalid("access_level", "only FULL is supported")
    key = _secret_key(fields.get("secret_key"))
    assert key is not None
    return TokenRequest(
        username=_username(fields.get("username")),
        secret_key=key,
        workspace=workspace_of(fields.get("org_id") or None, default_workspace),
        validity_seconds=default_validity,
    )


def revoke_request_from_json(data: object, *, default_workspace: str) -> RevokeRequest:
    """Validate a v2 ``/auth/token/revoke`` body."""
    body = _object(data)
    token = body.get("token")
    if token is not None and not isinstance(token, str):
        raise _invalid("token", "must be a string")
    return RevokeRequest(
        token=token or None,
        secret_key=_secret_key(body.get("secret_key"), required=False),
        workspace=workspace_of(body.get("org_id"), default_workspace),
    )
