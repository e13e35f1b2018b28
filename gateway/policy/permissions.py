"""Who may do what in the control plane: pure checks on an actor."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.policy.errors import Forbidden, NotFound, Unprocessable
from gateway.policy.model import OPERATOR, Role, TokenRecord, TokenType, User

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
WORKSPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What a client may name a workspace: ASCII, any case (``workspace_name`` folds it)."""
PERSONAL_REFUSED = (
    "personal API tokens can no longer be created; create a member or workspace API token instead"
)
MEMBER_DISABLED = "member API tokens are disabled for this workspace; an admin must enable member tokens"


@dataclass(frozen=True, slots=True)
class Actor:
    """Whom an admin-API call acts for: the operator, or a user with a role."""

    name: str
    role: Role | None  # None for the operator
    workspace: str | None  # None for the operator: every workspace

    @classmethod
    def operator(cls) -> Actor:
        """The admin key acting without X-Tokengate-Actor."""
        return cls(OPERATOR, None, None)

    @classmethod
    def of(cls, user: User) -> Actor:
        """The actor a user is."""
        return cls(user.username, user.role, user.workspace)

    @property
    def is_operator(self) -> bool:
        return self.role is None

    @property
    def is_admin(self) -> bool:
        """Operator or an admin user."""
        return self.role is None or self.role is Role.ADMIN


def workspace_name(name: str) -> str | None:
    """The one spelling of a workspace name (lower case), or None if it is not one.

    "Acme" and "acme" are one workspace: every name is folded where it enters
    (users, tokens, trusted auth, ``org_id``) and compared exactly after that,
    so a path naming "Acme" is never "acme"'s by a case-blind comparison.
    """
    return name.lower() if WORKSPACE.fullmatch(name) else None


def require_admin(actor: Actor, what: str) -> None:
    """Refuse members."""
    if not actor.is_admin:
        raise Forbidden(f"only an admin may {what}")


def target_workspace(actor: Actor, requested: str | None, default: str) -> str:
    """The workspace a call affects: the admin's own; the operator's choice."""
    if actor.workspace is None:
        ws = requested or default
        folded = workspace_name(ws)
        if folded is None:
            raise Unprocessable(f"workspace: not a valid workspace name: {ws!r}")
        return folded
    if requested is not None and not _names(requested, actor.workspace):
        raise Forbidden("an admin manages only their own workspace")
    return actor.workspace


def visible_workspace(actor: Actor, requested: str | None) -> str | None:
    """Which workspace a listing covers (None: all, for the operator only)."""
    if actor.workspace is None:
        return None if requested is None else workspace_name(requested) or requested
    if requested is not None and not _names(requested, actor.workspace):
        raise Forbidden("an admin manages only their own workspace")
    return actor.workspace


def _names(requested: str, workspace: str) -> bool:
    """Does a requested name (any case) name ``workspace``?"""
    # The exact match keeps a workspace created before names were folded
    # (still upper case in the store) reachable by its own admins.
    return requested == workspace or workspace_name(requested) == workspace


def may_see_token(actor: Actor, record: TokenRecord) -> bool:
    """Admins see their workspace's tokens, members their own, the operator all."""
    if actor.is_operator:
        return True
    if record.workspace != actor.workspace:
        return False
    return actor.role is Role.ADMIN or record.owner == actor.name


def check_revoke(actor: Actor, record: TokenRecord | None) -> TokenRecord:
    """The record an actor may revoke; 404 for what they cannot see."""
    if record is None or not may_see_token(actor, record):
        raise NotFound("no such token")
    return record


def check_create(
    actor: Actor, token_type: TokenType, *, member_tokens_enabled: bool
) -> None:
    """May the actor create a token of this type?"""
    if token_type is TokenType.PERSONAL:
        raise Forbidden(PERSONAL_REFUSED)
    if token_type is TokenType.TRUSTED:
        raise Unprocessable("type: trusted tokens are minted through trusted authentication")
    if token_type is TokenType.WORKSPACE:
        require_admin(actor, "create workspace API tokens")
        return
    if actor.is_operator:
        raise Forbidden(
            "a member API token is created by its own user: send X-Tokengate-Actor"
        )
    if not member_tokens_enabled:
        raise Forbidden(MEMBER_DISABLED)


def check_user_admin(actor: Actor, user: User | None) -> User:
    """An admin may manage users of their own workspace; 404 otherwise."""
    require_admin(actor, "manage users")
    if user is None or (actor.workspace is not None and user.workspace != actor.workspace):
        raise NotFound("no such user")
    return user


def valid_name(name: object) -> str:
    """A token display name: 1-64 printable characters."""
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable():
        raise Unprocessable("name: must be 1-64 printable characters")
    if name.strip() != name or not name.strip():
        raise Unprocessable("name: must not start or end with spaces")
    return name


def expiry_days(
    requested: int | None, *, default: int, maximum: int
) -> int:
    """The token lifetime in days, within the workspace's maximum."""
    if requested is None:
        return min(default, maximum)
    if not 1 <= requested <= maximum:
        raise Unprocessable(f"expires_in_days: must be between 1 and {maximum}")
    return requested
