"""Control-plane operations shared by the admin API and the CLI.

Each call takes the acting :class:`Actor`, checks what it may do (pure
checks in ``policy.permissions``), changes the store and records an audit
event. The secret of a new token leaves this module exactly once: in the
return value of :meth:`Lifecycle.create_token`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.config import Settings, compiled_policy
from gateway.keys import Keys
from gateway.policy import credentials
from gateway.policy.errors import Conflict, Forbidden, NotFound, Unprocessable
from gateway.policy.model import (
    AuditEvent,
    Role,
    TokenRecord,
    TokenStatus,
    TokenType,
    User,
    WorkspaceSettings,
    iso,
    new_user_generation,
)
from gateway.policy.permissions import (
    USERNAME,
    Actor,
    check_create,
    check_revoke,
    check_user_admin,
    expiry_days,
    may_see_token,
    require_admin,
    target_workspace,
    valid_name,
    visible_workspace,
    workspace_name,
)
from gateway.policy.restrictions import Restrictions, parse_rate_limit, parse_restrictions
from gateway.policy.rolling import grace_seconds
from gateway.store.base import AlreadyExists, Invalidation, Store, StoreError

DAY = 86400.0


def workspace_owner(workspace: str) -> str:
    """The owner recorded on workspace tokens: the workspace, not a person."""
    return f"workspace:{workspace}"


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly created token and its secret (shown once)."""

    record: TokenRecord
    secret: str = field(repr=False)


class Lifecycle:
    """Users, tokens, settings and audit, with the permission rules applied."""

    def __init__(
        self, store: Store, keys: Keys, settings: Settings,
        *, clock: Callable[[], float] = time.time,
        class_names: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.settings = settings
        self.clock = clock
        # The rate-limit classes a scope may name: the running policy's (after a
        # reload too) when a gateway passes them, else the settings' own.
        self.class_names = class_names or (
            lambda: [c.name for c in compiled_policy(settings).classes])

    async def audit(self, event: str, actor: str, subject: str, workspace: str,
                    **detail: Any) -> None:
        """Record one audit event."""
        await self.store.append_audit(
            AuditEvent(self.clock(), event, actor, subject, workspace, detail)
        )

    async def resolve_actor(self, name: str | None) -> Actor:
        """The operator (no name) or an existing user; 403 for an unknown actor."""
        if name is None:
            return Actor.operator()
        if not USERNAME.fullmatch(name):
            raise Forbidden("unknown actor")
        user = await self.store.get_user(name)
        if user is None:
            raise Forbidden("unknown actor")
        return Actor.of(user)

    # users
    async def add_user(self, actor: Actor, username: str, role: Role,
                       workspace: str | None) -> User:
        """Add a user to the actor's workspace (or the operator's choice)."""
        require_admin(actor, "add users")
        ws = target_workspace(actor, workspace, self.settings.default_workspace)
        if not USERNAME.fullmatch(username):
            raise Unprocessable("username: 1-64 of letters, digits and _.@+- (not first)")
        user = User(username, role, ws, self.clock(), new_user_generation())
        try:
            await self.store.add_user(user)
        except AlreadyExists:
            raise Conflict(f"user {username!r} already exists") from None
        await self.audit("user.added", actor.name, username, ws, role=role.value)
        return user

    async def list_users(self, actor: Actor, workspace: str | None = None) -> list[User]:
        """Users the actor may manage."""
        require_admin(actor, "list users")
        return await self.store.list_users(visible_workspace(actor, workspace))

    async def remove_user(self, actor: Actor, username: str) -> int:
        """Remove a user; every token they own is revoked at once."""
        user = check_user_admin(actor, await self.store.get_user(username))
        revoked = await self.store.remove_user(username, at=self.clock())
        if revoked is None:
            raise NotFound("no such user")
        await self.audit("user.removed", actor.name, username, user.workspace, revoked=revoked)
        return revoked

    # settings
    async def workspace_settings(self, actor: Actor, workspace: str | None) -> tuple[str, WorkspaceSettings]:
        """The settings of the actor's workspace."""
        require_admin(actor, "read workspace settings")
        ws = target_workspace(actor, workspace, self.settings.default_workspace)
        return ws, await self.store.get_settings(ws)

    async def set_member_tokens(self, actor: Actor, enabled: bool,
                                workspace: str | None) -> WorkspaceSettings:
        """Switch the member-token feature for a workspace."""
        require_admin(actor, "change the member-token setting")
        ws = target_workspace(actor, workspace, self.settings.default_workspace)
        new = replace(await self.store.get_settings(ws), member_tokens=enabled)
        await self.store.put_settings(ws, new)
        await self.audit("member_tokens." + ("enabled" if enabled else "disabled"),
                         actor.name, ws, ws)
        return new

    async def set_expiry(self, actor: Actor, default_days: int | None, max_days: int | None,
                         workspace: str | None) -> WorkspaceSettings:
        """Change a workspace's default and maximum token lifetime."""
        require_admin(actor, "change token expiry")
        ws = target_workspace(actor, workspace, self.settings.default_workspace)
        cap = self.settings.tokens
        for name, v in (("default_expiry_days", default_days), ("max_expiry_days", max_days)):
            if v is not None and not 1 <= v <= 3650:
                raise Unprocessable(f"{name}: must be between 1 and 3650")
        eff_max = max_days or cap.max_expiry_days
        if default_days is not None and default_days > eff_max:
            raise Unprocessable("default_expiry_days: must not exceed max_expiry_days")
        new = replace(await self.store.get_settings(ws), default_expiry_days=default_days,
                      max_expiry_days=max_days)
        await self.store.put_settings(ws, new)
        await self.audit("expiry.changed", actor.name, ws, ws,
                         default_expiry_days=default_days, max_expiry_days=max_days)
        return new

    # tokens
    async def create_token(
        self, actor: Actor, token_type: TokenType, name: object,
        *, expires_in_days: int | None = None, workspace: str | None = None,
        scopes: object = None, allowed_networks: object = None, rate_limit: object = None,
    ) -> NewToken:
        """Create a workspace token (admins) or the actor's own member token, optionally
        restricted (scopes, networks, its own rate limit: they only narrow it)."""
        if token_type is TokenType.MEMBER and workspace is not None and not actor.is_operator \
                and workspace_name(workspace) != actor.workspace:
            raise Unprocessable("workspace: a member token belongs to its user's workspace")
        ws = (target_workspace(actor, workspace, self.settings.default_workspace)
              if token_type is TokenType.WORKSPACE else actor.workspace or "")
        ws_settings = await self.store.get_settings(ws) if ws else WorkspaceSettings()
        check_create(actor, token_type, member_tokens_enabled=ws_settings.member_tokens)
        display = valid_name(name)
        default = ws_settings.default_expiry_days or self.settings.tokens.default_expiry_days
        maximum = ws_settings.max_expiry_days or self.settings.tokens.max_expiry_days
        days = expiry_days(expires_in_days, default=default, maximum=maximum)
        restrictions = parse_restrictions(
            scopes=scopes, allowed_networks=allowed_networks, rate_limit=rate_limit,
            class_names=self.class_names())
        owner = workspace_owner(ws) if token_type is TokenType.WORKSPACE else actor.name
        return await self._insert(token_type, display, owner, ws, actor.name, days * DAY,
                                  restrictions=restrictions)

    async def _insert(self, token_type: TokenType, name: str, owner: str, ws: str,
                      created_by: str, lifetime: float | None,
                      token: str | None = None, secret: str | None = None,
                      restrictions: Restrictions | None = None) -> NewToken:
        now = self.clock()
        secret = secret or credentials.new_secret()
        record = TokenRecord(
            token=token or credentials.new_token(token_type), type=token_type, name=name,
            owner=owner, workspace=ws, created_by=created_by, created_at=now,
            expires_at=None if lifetime is None else now + lifetime,
            secret_hash=self.keys.hash_secret(secret), restrictions=restrictions,
        )
        try:
            await self.store.create_token(record)
        except AlreadyExists:
            raise Conflict("a token with that id already exists") from None
        # A replica may remember this id as unknown (tried before it existed, as
        # an imported legacy token is): every one forgets that. Best effort: the
        # token exists, and such a memory lasts seconds (cache.negative_ttl_seconds).
        with contextlib.suppress(StoreError):
            await self.store.publish(Invalidation("created", record.token, now))
        restricted = {k: v for k, v in restrictions.to_json().items() if v is not None} \
            if restrictions is not None else {}
        await self.audit("token.created", created_by, record.token, ws,
                         type=token_type.value, owner=owner, name=name, **restricted)
        return NewToken(record, secret)

    async def import_personal(self, token: str, secret: str, username: str,
                              name: str = "imported personal token") -> TokenRecord:
        """Import an existing legacy personal token for migration (operator only)."""
        shape = credentials.token_shape(token)
        if shape is None or shape.type not in (None, TokenType.PERSONAL):
            raise Unprocessable("token: not a personal token (letters and digits, 8-64)")
        if not credentials.secret_well_formed(secret, legacy=True):
            raise Unprocessable("secret: not a personal token secret")
        user = await self.store.get_user(username)
        if user is None:
            raise NotFound(f"no such user: {username}")
        new = await self._insert(TokenType.PERSONAL, name, username, user.workspace,
                                 "operator", None, token=token, secret=secret)
        return new.record

    async def list_tokens(self, actor: Actor, *, token_type: TokenType | None = None,
                          status: TokenStatus | None = None,
                          workspace: str | None = None) -> list[TokenRecord]:
        """Tokens the actor may see, including revoked and expired ones."""
        now = self.clock()
        if actor.is_admin:
            ws = visible_workspace(actor, workspace)
            records = await self.store.list_tokens(ws)
        else:
            records = await self.store.list_tokens(actor.workspace, owner=actor.name)
        return [
            r for r in records
            if may_see_token(actor, r)
            and (token_type is None or r.type is token_type)
            and (status is None or r.status(now) is status)
        ]

    async def revoke_token(self, actor: Actor, token: str) -> TokenRecord:
        """Revoke one token (idempotent: a second call returns the record)."""
        check_revoke(actor, await self.store.get_token(token))
        at = self.clock()
        record = await self.store.revoke_token(token, at=at)
        if record is None:
            raise NotFound("no such token")
        if record.revoked_at == at:  # this call revoked it (a repeat keeps the first time)
            await self.audit("token.revoked", actor.name, token, record.workspace,
                             type=record.type.value, owner=record.owner)
        return record

    async def roll_token(self, actor: Actor, token: str, grace: object = None) -> NewToken:
        """A new secret for the same token; the old one works ``grace`` seconds more.

        Admins roll any token of their workspace, members their own. The
        new secret leaves this module only in the return value.
        """
        seconds = grace_seconds(grace)
        self._rollable(check_revoke(actor, await self.store.get_token(token)), "rolled")
        secret = credentials.new_secret()
        at = self.clock()
        rolled = await self.store.roll_secret(
            token, secret_hash=self.keys.hash_secret(secret), previous_until=at + seconds, at=at)
        if rolled is None:
            raise NotFound("no such token")
        if rolled.rolled_at != at:  # revoked in the meantime
            raise Conflict("this token is revoked; it cannot be rolled")
        await self.audit("token.rolled", actor.name, token, rolled.workspace,
                         type=rolled.type.value, owner=rolled.owner, grace_seconds=seconds,
                         previous_secret_expires_at=iso(rolled.previous_secret_until))
        return NewToken(rolled, secret)

    async def set_rate_limit(self, actor: Actor, token: str, rate_limit: object) -> TokenRecord:
        """Give a token its own rate limit, or (None) take it away: admins, any token of
        their workspace."""
        require_admin(actor, "set a token's rate limit")
        limit = None if rate_limit is None else parse_rate_limit(rate_limit)
        self._rollable(check_revoke(actor, await self.store.get_token(token)), "limited")
        record = await self.store.set_rate_limit(token, limit)
        if record is None:
            raise NotFound("no such token")
        await self.audit("token.rate_limit_set", actor.name, token, record.workspace,
                         type=record.type.value, owner=record.owner,
                         rate_limit=None if limit is None else limit.to_json())
        return record

    def _rollable(self, record: TokenRecord, what: str) -> TokenRecord:
        """The record, if it is a workspace or member token that still works (409 else)."""
        if record.type not in (TokenType.WORKSPACE, TokenType.MEMBER):
            raise Conflict(f"only workspace and member tokens can be {what}; "
                           f"this one is a {record.type.value} token")
        status = record.status(self.clock())
        if status is not TokenStatus.ACTIVE:
            raise Conflict(f"this token is {status.value}; it cannot be {what}")
        return record

    async def revoke_all(self, actor: Actor, token_type: TokenType | None,
                         workspace: str | None = None) -> int:
        """Revoke every active token of a workspace (or of one type); the count."""
        require_admin(actor, "revoke all tokens")
        ws = target_workspace(actor, workspace, self.settings.default_workspace)
        count = await self.store.revoke_all(ws, at=self.clock(), token_type=token_type)
        await self.audit("token.revoke_all", actor.name, ws, ws,
                         type=token_type.value if token_type else None, revoked=count)
        return count

    async def list_audit(self, actor: Actor, limit: int,
                         workspace: str | None = None) -> list[AuditEvent]:
        """Recent events the actor may read."""
        require_admin(actor, "read the audit log")
        return await self.store.list_audit(workspace=visible_workspace(actor, workspace),
                                           limit=limit)
