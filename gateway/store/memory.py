"""An in-process store for ``tokengate demo`` and single-process trials.

Same semantics as the Redis store (the contract suite proves it); nothing
survives a restart and nothing is shared between processes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace

from gateway.policy.expiring import ExpiringCounts, expiring_counts, no_expiring
from gateway.policy.model import (
    AuditEvent,
    Credential,
    TokenRecord,
    TokenType,
    User,
    WorkspaceSettings,
)
from gateway.policy.ratelimit import RateDecision, Reservation
from gateway.policy.restrictions import Restrictions, TokenLimit
from gateway.policy.trusted import BearerCredential, BearerRecord, TrustedKey
from gateway.store.base import (
    AUDIT_MAX,
    AlreadyExists,
    Invalidation,
    InvalidationHandler,
    RateWindow,
    newest_first,
    owner_matches,
    revocable,
)
from gateway.store.ratelimit_memory import MemoryRateLimiter


class MemoryStore:
    """Everything in dictionaries of this process."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._users: dict[str, User] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._settings: dict[str, WorkspaceSettings] = {}
        # One capped list per workspace; NO_WORKSPACE's is the security list.
        self._audit: dict[str, deque[AuditEvent]] = {}
        self._handlers: list[InvalidationHandler] = []
        self._limiter = MemoryRateLimiter(clock)
        self._key_check: str | None = None
        self._expiring: ExpiringCounts = no_expiring()

    async def ping(self) -> None:
        """The memory store is always reachable."""

    async def close(self) -> None:
        """Drop subscribers."""
        self._handlers.clear()

    async def claim_key_check(self, value: str) -> str:
        """Record the master key's check value unless one is recorded; the recorded one."""
        if self._key_check is None:
            self._key_check = value
        return self._key_check

    async def check_layout(self) -> None:
        """A memory store is always of this version's layout."""

    async def add_user(self, user: User) -> None:
        """Add a user; raise AlreadyExists if the username is taken."""
        if user.username in self._users:
            raise AlreadyExists(user.username)
        self._users[user.username] = user

    async def get_user(self, username: str) -> User | None:
        """One user, or None."""
        return self._users.get(username)

    async def list_users(self, workspace: str | None) -> list[User]:
        """Users of a workspace (or all), sorted by name."""
        return sorted(
            (u for u in self._users.values() if workspace is None or u.workspace == workspace),
            key=lambda u: u.username,
        )

    async def remove_user(self, username: str, *, at: float) -> int | None:
        """Remove a user and revoke their tokens."""
        user = self._users.pop(username, None)
        if user is None:
            return None
        count = self._revoke(
            revocable(self._tokens.values(), now=at, token_type=None, owner=username), at
        )
        await self.publish(Invalidation("user", username, at))
        return count

    async def create_token(self, record: TokenRecord) -> None:
        """Store a new token."""
        if record.token in self._tokens:
            raise AlreadyExists(record.token)
        self._tokens[record.token] = record

    async def get_token(self, token: str) -> TokenRecord | None:
        """One token record, or None."""
        return self._tokens.get(token)

    async def load_credential(self, token: str) -> Credential | None:
        """The token, its owner and its workspace settings."""
        record = self._tokens.get(token)
        if record is None:
            return None
        return Credential(
            record, self._users.get(record.owner), await self.get_settings(record.workspace)
        )

    async def list_tokens(
        self, workspace: str | None, *, owner: str | None = None
    ) -> list[TokenRecord]:
        """Tokens of a workspace (or all), oldest first."""
        return sorted(
            (
                r for r in self._tokens.values()
                if (workspace is None or r.workspace == workspace) and owner_matches(r, owner)
            ),
            key=lambda r: (r.created_at, r.token),
        )

    async def revoke_token(self, token: str, *, at: float) -> TokenRecord | None:
        """Revoke one token (idempotent)."""
        record = self._tokens.get(token)
        if record is None:
            return None
        if record.revoked_at is None:
            self._revoke([record], at)
            await self.publish(Invalidation("token", token, at))
        return self._tokens[token]

    async def revoke_all(
        self,
        workspace: str,
        *,
        at: float,
        token_type: TokenType | None = None,
        owner: str | None = None,
    ) -> int:
        """Revoke every active token of a workspace (of a type/owner)."""
        records = [r for r in self._tokens.values() if r.workspace == workspace]
        victims = revocable(records, now=at, token_type=token_type, owner=owner)
        count = self._revoke(victims, at)
        for r in victims:
            await self.publish(Invalidation("token", r.token, at))
        return count

    def _revoke(self, records: list[TokenRecord], at: float) -> int:
        for r in records:
            self._tokens[r.token] = r.revoked(at)
        return len(records)

    async def touch(self, last_used: Mapping[str, float]) -> None:
        """Record last_used_at for tokens that still exist."""
        for token, ts in last_used.items():
            record = self._tokens.get(token)
            if record is not None and (record.last_used_at or 0) < ts:
                self._tokens[token] = replace(record, last_used_at=ts)

    async def get_settings(self, workspace: str) -> WorkspaceSettings:
        """A workspace's settings."""
        return self._settings.get(workspace, WorkspaceSettings())

    async def put_settings(self, workspace: str, settings: WorkspaceSettings) -> None:
        """Replace a workspace's settings."""
        self._settings[workspace] = settings
        await self.publish(Invalidation("all", workspace, self._clock()))

    async def append_audit(self, event: AuditEvent) -> None:
        """Record an event in its workspace's list (no workspace: the security list)."""
        events = self._audit.get(event.workspace)
        if events is None:
            events = self._audit[event.workspace] = deque(maxlen=AUDIT_MAX)
        events.appendleft(event)

    async def list_audit(self, *, workspace: str | None, limit: int) -> list[AuditEvent]:
        """The newest events first (of every list, merged by time, for None)."""
        if workspace is not None:
            return list(itertools.islice(self._audit.get(workspace, ()), limit))
        return newest_first(self._audit.values(), limit)

    async def hit_rate_limit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """Count one request against a sliding window."""
        return await self._limiter.hit(key, limit, window_seconds)

    async def peek_rate_limit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """Would a request be admitted now?"""
        return await self._limiter.peek(key, limit, window_seconds)

    async def reserve_rate_limit(self, key: str, limit: int, window_seconds: float) -> Reservation:
        """Count one request, saying when it was recorded."""
        return await self._limiter.reserve(key, limit, window_seconds)

    async def refund_rate_limit(
        self, key: str, limit: int, window_seconds: float, *, at_us: int
    ) -> RateDecision:
        """Take back a reserved request."""
        return await self._limiter.refund(key, limit, window_seconds, at_us=at_us)

    async def subscribe(self, handler: InvalidationHandler) -> None:
        """Deliver invalidations published in this process."""
        self._handlers.append(handler)

    async def publish(self, message: Invalidation) -> None:
        """Call every subscriber (this process only)."""
        for handler in list(self._handlers):
            result = handler(message)
            if inspect.isawaitable(result):
                await result
        await asyncio.sleep(0)

    # trusted authentication: the tables are created on first use
    @functools.cached_property
    def _trusted_keys(self) -> dict[str, TrustedKey]:
        return {}

    @functools.cached_property
    def _bearers(self) -> dict[str, BearerRecord]:
        return {}

    async def enable_trusted_auth(self, key: TrustedKey) -> TrustedKey:
        """Store the key unless the workspace has one, and its org id; the workspace's key."""
        if key.org_id is not None:
            holder = await self.trusted_key_for_org_id(key.org_id)
            if holder is not None and holder.workspace != key.workspace:
                raise AlreadyExists(f"org id {key.org_id}")
        stored = self._trusted_keys.setdefault(key.workspace, key)
        if key.org_id is not None and stored.org_id != key.org_id:
            stored = self._trusted_keys[key.workspace] = replace(stored, org_id=key.org_id)
        return stored

    async def get_trusted_key(self, workspace: str) -> TrustedKey | None:
        """A workspace's key, or None."""
        return self._trusted_keys.get(workspace)

    async def trusted_key_for_org_id(self, org_id: int) -> TrustedKey | None:
        """The key of the workspace holding ``org_id`` (a scan: few workspaces live here)."""
        return next((k for k in self._trusted_keys.values() if k.org_id == org_id), None)

    async def disable_trusted_auth(self, workspace: str) -> TrustedKey | None:
        """Remove a workspace's key (cached bearers are dropped everywhere)."""
        old = self._trusted_keys.pop(workspace, None)
        await self.publish(Invalidation("all", workspace, self._clock()))
        return old

    async def create_bearer(self, record: BearerRecord) -> None:
        """Store a bearer token until its expiry."""
        if len(self._bearers) % 1024 == 1023:
            # Tokens nobody presents again are swept here, as Redis expires them.
            now = self._clock()
            for h in [h for h, r in self._bearers.items() if now >= r.expires_at]:
                del self._bearers[h]
        self._bearers[record.token_hash] = record

    def _live_bearer(self, token_hash: str) -> BearerRecord | None:
        # The store clock plays Redis's TTL: an expired record is gone.
        record = self._bearers.get(token_hash)
        if record is not None and self._clock() >= record.expires_at:
            del self._bearers[token_hash]
            return None
        return record

    async def load_bearer(self, token_hash: str) -> BearerCredential | None:
        """A bearer, its user and its workspace's current key generation."""
        record = self._live_bearer(token_hash)
        if record is None:
            return None
        key = self._trusted_keys.get(record.workspace)
        return BearerCredential(record, self._users.get(record.user),
                                key.generation if key else None)

    async def revoke_bearer(self, token_hash: str, *, at: float) -> BearerRecord | None:
        """Revoke one bearer token (idempotent)."""
        record = self._live_bearer(token_hash)
        if record is not None and record.revoked_at is None:
            record = self._bearers[token_hash] = replace(record, revoked_at=at)
            await self.publish(Invalidation("bearer", token_hash, at))
        return record

    # token restrictions and rolling
    async def hit_rate_limit_both(
        self, first: RateWindow, second: RateWindow
    ) -> tuple[RateDecision, RateDecision]:
        """Count one request in both windows or neither."""
        return await self._limiter.hit_both(first, second)

    async def roll_secret(self, token: str, *, secret_hash: str, previous_until: float,
                          at: float) -> TokenRecord | None:
        """Swap in the new secret hash, keeping the old one until ``previous_until``."""
        record = self._tokens.get(token)
        if record is None or record.revoked_at is not None:
            return record
        record = self._tokens[token] = replace(
            record, secret_hash=secret_hash, previous_secret_hash=record.secret_hash,
            previous_secret_until=previous_until, rolled_at=at)
        await self.publish(Invalidation("token", token, at))
        return record

    async def set_rate_limit(self, token: str, rate_limit: TokenLimit | None) -> TokenRecord | None:
        """Set or remove a token's own rate limit."""
        record = self._tokens.get(token)
        if record is None:
            return None
        current = record.restrictions or Restrictions()
        record = self._tokens[token] = replace(
            record, restrictions=current.with_rate_limit(rate_limit))
        await self.publish(Invalidation("token", token, self._clock()))
        return record

    # expiry watch: one process, so the lease is only ever contended by itself
    @functools.cached_property
    def _leases(self) -> dict[str, float]:
        return {}

    async def claim_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take the lease unless it is held until later than now."""
        now = self._clock()
        if self._leases.get(name, 0.0) > now:
            return False
        self._leases[name] = now + ttl_seconds
        return True

    async def refresh_expiring(self, now: float) -> ExpiringCounts:
        """Count the tokens expiring soon and keep the counts."""
        self._expiring = expiring_counts(
            ((r.type.value, r.expires_at, r.revoked_at) for r in self._tokens.values()), now)
        return dict(self._expiring)

    async def load_expiring(self) -> ExpiringCounts:
        """The counts the last refresh kept."""
        return dict(self._expiring)
