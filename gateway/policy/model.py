"""The values tokengate reasons about: users, token records, identities."""

from __future__ import annotations

import enum
import math
import secrets
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only for annotations: restrictions import the rules, which import this module.
    from gateway.policy.restrictions import Restrictions

DAY = 86400.0


class Role(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class TokenType(enum.StrEnum):
    WORKSPACE = "workspace"
    MEMBER = "member"
    PERSONAL = "personal"
    TRUSTED = "trusted"


class TokenStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


OPERATOR = "operator"
"""The actor name recorded when the admin key acts without ``X-Tokengate-Actor``."""


@dataclass(frozen=True, slots=True)
class User:
    """A user of one workspace.

    ``generation`` is a random id set when the user is created; bearer
    tokens record it, so removing a user and adding one of the same name
    never revives the old user's tokens. Users stored before it existed
    have ``""`` (see ``policy.trusted.bearer_identity``).
    """

    username: str
    role: Role
    workspace: str
    created_at: float
    generation: str = ""

    def to_json(self) -> dict[str, Any]:
        """The user as the admin API shows it."""
        return {
            "username": self.username,
            "role": self.role.value,
            "workspace": self.workspace,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored API token. ``secret_hash`` is the keyed hash, never the secret."""

    token: str
    type: TokenType
    name: str
    owner: str
    workspace: str
    created_by: str
    created_at: float
    expires_at: float | None
    secret_hash: str = field(repr=False)
    last_used_at: float | None = None
    revoked_at: float | None = None
    restrictions: Restrictions | None = None
    # After a roll: the replaced secret's keyed hash, valid until previous_secret_until.
    previous_secret_hash: str = field(default="", repr=False)
    previous_secret_until: float | None = None
    rolled_at: float | None = None

    def status(self, now: float) -> TokenStatus:
        """Revoked wins over expired; both are final."""
        if self.revoked_at is not None:
            return TokenStatus.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE

    def revoked(self, at: float) -> TokenRecord:
        """A copy revoked at ``at`` (kept if already revoked)."""
        if self.revoked_at is not None:
            return self
        return replace(self, revoked_at=at)

    def expires_in_days(self, now: float) -> int | None:
        """Whole days left before expiry (0 once expired); None if it never expires or is revoked."""
        if self.expires_at is None or self.revoked_at is not None:
            return None
        return max(0, math.floor((self.expires_at - now) / DAY))

    def to_json(self, now: float) -> dict[str, Any]:
        """The admin view of the token: never a secret or a hash of one."""
        restrictions = self.restrictions
        return {
            "token": self.token,
            "type": self.type.value,
            "name": self.name,
            "owner": self.owner,
            "workspace": self.workspace,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "status": self.status(now).value,
            "expires_in_days": self.expires_in_days(now),
            "scopes": None,
            "allowed_networks": None,
            "rate_limit": None,
            **(restrictions.to_json() if restrictions is not None else {}),
            "rolled_at": iso(self.rolled_at),
            "previous_secret_expires_at": iso(self.previous_secret_until),
        }


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a proxied request acts as, once authenticated."""

    user: str
    role: Role
    token_type: TokenType
    token: str
    workspace: str
    restrictions: Restrictions | None = None  # the token's scopes, networks, own limit


def new_user_generation() -> str:
    """A new user generation id (random, not secret)."""
    return secrets.token_hex(8)


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an RFC 3339 UTC timestamp with millisecond precision."""
    if ts is None:
        return None
    import datetime as _dt

    return (
        _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    """Per-workspace switches an admin controls."""

    member_tokens: bool = False
    default_expiry_days: int | None = None
    max_expiry_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The settings as the admin API shows them."""
        return {
            "member_tokens": self.member_tokens,
            "default_expiry_days": self.default_expiry_days,
            "max_expiry_days": self.max_expiry_days,
        }


@dataclass(frozen=True, slots=True)
class Credential:
    """What authentication needs in one store round trip: the token record,
    its owner (None if the owner is gone) and the workspace's settings."""

    record: TokenRecord
    owner: User | None
    settings: WorkspaceSettings


NO_WORKSPACE = ""
"""The ``workspace`` of an audit event that belongs to no tenant (a refused admin
key, a ``secret_key`` naming a workspace without trusted auth): it goes to the
operator's security list, never to a workspace's audit log."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One lifecycle or security event."""

    at: float
    event: str
    actor: str
    subject: str
    workspace: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The event as the admin API shows it."""
        return {
            "at": iso(self.at),
            "event": self.event,
            "actor": self.actor,
            "subject": self.subject,
            "workspace": self.workspace,
            "detail": self.detail,
        }
