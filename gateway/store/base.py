"""The one interface every store implements.

Implementations: :class:`gateway.store.redis.RedisStore` (production) and
:class:`gateway.store.memory.MemoryStore` (``tokengate demo``, single process).
``tests/store/test_contract.py`` runs the same suite against both.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.policy.expiring import ExpiringCounts
from gateway.policy.model import (
    AuditEvent,
    Credential,
    TokenRecord,
    TokenStatus,
    TokenType,
    User,
    WorkspaceSettings,
)
from gateway.policy.ratelimit import RateDecision, Reservation
from gateway.policy.restrictions import TokenLimit
from gateway.policy.trusted import BearerCredential, BearerRecord, TrustedKey

RateWindow = tuple[str, int, float]
"""A rate-limit window to count a request in: (key, limit, window_seconds)."""

AUDIT_MAX = 10_000
"""Audit events kept per list (oldest dropped first): each workspace has its own
list, and events of no workspace go to the operator's security list, so no
workspace's traffic can push another's history out."""


class StoreError(Exception):
    """The store could not be reached or answered with an error."""


class AlreadyExists(Exception):
    """A record with that key already exists."""


@dataclass(frozen=True, slots=True)
class Invalidation:
    """A push message telling every process to forget cached credentials.

    ``kind`` is ``token`` (``key`` a public token), ``bearer`` (``key`` a
    trusted-auth bearer's hash), ``user`` (``key`` a username: drop every
    token of that owner) or ``all``; ``created`` (``key`` a public token that
    now exists: forget having seen it unknown) evicts nothing; ``block`` is not
    about the cache: ``key`` (a client address) used up its failed-auth
    budget and is throttled until ``at`` on every process.
    """

    kind: str
    key: str
    at: float


InvalidationHandler = Callable[[Invalidation | None], Awaitable[None] | None]
"""Called per message; with ``None`` when messages may have been missed."""


class Store(Protocol):
    """Users, tokens, settings, audit events, rate-limit windows, invalidations."""

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the store answers."""

    async def close(self) -> None:
        """Release connections and background tasks."""

    async def claim_key_check(self, value: str) -> str:
        """Record the master key's check value unless one is recorded; the recorded one."""

    async def check_layout(self) -> None:
        """Raise :class:`gateway.store.layout.StoreMismatch` unless this process can use
        the store as it is (its key layout, its kind of server); a new store is set up."""

    # users
    async def add_user(self, user: User) -> None:
        """Add a user; raise :class:`AlreadyExists` if the username is taken."""

    async def get_user(self, username: str) -> User | None:
        """One user, or None."""

    async def list_users(self, workspace: str | None) -> list[User]:
        """Users of a workspace (all workspaces for None), sorted by name."""

    async def remove_user(self, username: str, *, at: float) -> int | None:
        """Remove a user and revoke every token they own at once.

        Returns the number of tokens revoked, or None if there was no such user.
        """

    # tokens
    async def create_token(self, record: TokenRecord) -> None:
        """Store a new token; raise :class:`AlreadyExists` on a clash."""

    async def get_token(self, token: str) -> TokenRecord | None:
        """One token record (with its hash), or None."""

    async def load_credential(self, token: str) -> Credential | None:
        """The token with its owner and workspace settings, in one round trip."""

    async def list_tokens(
        self, workspace: str | None, *, owner: str | None = None
    ) -> list[TokenRecord]:
        """Tokens of a workspace (or all), optionally only one owner's, oldest first."""

    async def revoke_token(self, token: str, *, at: float) -> TokenRecord | None:
        """Revoke one token (idempotent); None if unknown."""

    async def revoke_all(
        self,
        workspace: str,
        *,
        at: float,
        token_type: TokenType | None = None,
        owner: str | None = None,
    ) -> int:
        """Atomically revoke every active token of a workspace (of a type/owner)."""

    async def touch(self, last_used: Mapping[str, float]) -> None:
        """Record ``last_used_at`` for many tokens at once (coalesced writes)."""

    # workspace settings
    async def get_settings(self, workspace: str) -> WorkspaceSettings:
        """A workspace's settings (defaults if never set)."""

    async def put_settings(self, workspace: str, settings: WorkspaceSettings) -> None:
        """Replace a workspace's settings and invalidate cached credentials."""

    # audit
    async def append_audit(self, event: AuditEvent) -> None:
        """Record an event in its workspace's list, or in the security list for
        ``NO_WORKSPACE`` (each bounded to the newest :data:`AUDIT_MAX`)."""

    async def list_audit(self, *, workspace: str | None, limit: int) -> list[AuditEvent]:
        """The newest events first: of one workspace (``NO_WORKSPACE``: the security
        list), or for None of every list merged by time."""

    # rate limits
    async def hit_rate_limit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """Count one request against a sliding window (rejections are not counted)."""

    async def peek_rate_limit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """Would a request under ``key`` be admitted now? Records nothing."""

    async def reserve_rate_limit(self, key: str, limit: int, window_seconds: float) -> Reservation:
        """:meth:`hit_rate_limit`, also returning when the admission was recorded.

        For counting an attempt before it is checked: reserve, check, and
        :meth:`refund_rate_limit` if it turned out not to count (a right secret).
        """

    async def refund_rate_limit(
        self, key: str, limit: int, window_seconds: float, *, at_us: int
    ) -> RateDecision:
        """Take back the admission reserved at ``at_us`` (a no-op once it left the window)."""

    # invalidation
    async def subscribe(self, handler: InvalidationHandler) -> None:
        """Deliver every invalidation from any process to ``handler`` until close."""

    async def publish(self, message: Invalidation) -> None:
        """Tell every process sharing the store."""

    # trusted authentication
    async def enable_trusted_auth(self, key: TrustedKey) -> TrustedKey:
        """Store ``key`` unless its workspace already has one; return the workspace's key.

        A ``key.org_id`` is given to the workspace even if it already has a
        key (which it keeps); :class:`AlreadyExists` if another workspace
        holds that org id. ``key.org_id`` None leaves the org id as it is.
        """

    async def get_trusted_key(self, workspace: str) -> TrustedKey | None:
        """A workspace's trusted-auth key (encrypted), or None while disabled."""

    async def trusted_key_for_org_id(self, org_id: int) -> TrustedKey | None:
        """The key of the workspace holding the numeric ``org_id``, or None."""

    async def disable_trusted_auth(self, workspace: str) -> TrustedKey | None:
        """Remove a workspace's key and org id (its bearers stop working); the old key or None."""

    async def create_bearer(self, record: BearerRecord) -> None:
        """Store a minted bearer token; the store forgets it at ``expires_at`` (TTL)."""

    async def load_bearer(self, token_hash: str) -> BearerCredential | None:
        """A bearer with its user and its workspace's key generation, in one round trip."""

    async def revoke_bearer(self, token_hash: str, *, at: float) -> BearerRecord | None:
        """Revoke one bearer token (idempotent); None if unknown or expired."""

    # token restrictions and rolling
    async def hit_rate_limit_both(
        self, first: RateWindow, second: RateWindow
    ) -> tuple[RateDecision, RateDecision]:
        """Count one request against two windows (key, limit, window_seconds) in one step:
        recorded in both, or (if either is full) in neither."""

    async def roll_secret(self, token: str, *, secret_hash: str, previous_until: float,
                          at: float) -> TokenRecord | None:
        """Make ``secret_hash`` the token's secret, keep the one it replaces valid until
        ``previous_until``, and invalidate cached copies everywhere, atomically.

        A revoked token is returned unchanged; None if unknown.
        """

    async def set_rate_limit(self, token: str, rate_limit: TokenLimit | None) -> TokenRecord | None:
        """Set (None: remove) a token's own rate limit and invalidate cached copies; None if unknown."""

    # expiry watch
    async def claim_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take the lease ``name`` for ``ttl_seconds`` unless it is held (by anyone); True if taken."""

    async def refresh_expiring(self, now: float) -> ExpiringCounts:
        """Count the active tokens expiring soon (a scan), keep the counts for
        :meth:`load_expiring` and return them."""

    async def load_expiring(self) -> ExpiringCounts:
        """The counts the last :meth:`refresh_expiring` kept (zeros if none ran)."""


def newest_first(lists: Iterable[Iterable[AuditEvent]], limit: int) -> list[AuditEvent]:
    """Audit lists (each newest first) merged by time, newest first, at most ``limit``."""
    return list(itertools.islice(heapq.merge(*lists, key=_at, reverse=True), limit))


def _at(event: AuditEvent) -> float:
    return event.at


def owner_matches(record: TokenRecord, owner: str | None) -> bool:
    """True if no owner filter is set or the record is that owner's."""
    return owner is None or record.owner == owner


def revocable(records: Iterable[TokenRecord], *, now: float,
              token_type: TokenType | None, owner: str | None) -> list[TokenRecord]:
    """The records revoke-all would revoke: active ones of the type/owner."""
    return [
        r for r in records
        if r.status(now) is TokenStatus.ACTIVE
        and (token_type is None or r.type is token_type)
        and owner_matches(r, owner)
    ]
