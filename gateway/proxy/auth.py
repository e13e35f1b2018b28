"""Authenticate a proxied request: header → credential → identity.

The credential comes from the in-process cache when it can (no store round
trip), from the store otherwise. Failed attempts are throttled per client
address without touching the presented token's quota.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway.keys import Keys
from gateway.policy.authheader import BasicCredentials, parse_authorization
from gateway.policy.authn import authenticate
from gateway.policy.errors import TooManyRequests, Unauthenticated
from gateway.policy.model import AuditEvent, Credential, Identity
from gateway.proxy.cache import CredentialCache
from gateway.proxy.lastused import LastUsed
from gateway.store.base import Store

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.metrics import Metrics

BearerResolver = Callable[[str], Awaitable[Identity]]

# Local memory of addresses that used up their failure budget: they get 429
# until then without a store call (each replica learns it on its own).
BLOCKED_MAX = 100_000
AUDIT_EVERY = 60.0


class Authenticator:
    """Turns an Authorization header into an :class:`Identity` or a 401/429."""

    def __init__(
        self,
        *,
        store: Store,
        keys: Keys,
        settings: Settings,
        cache: CredentialCache,
        last_used: LastUsed,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.keys = keys
        self.settings = settings
        self.cache = cache
        self.last_used = last_used
        self.metrics = metrics
        self.clock = clock
        self.bearer: BearerResolver | None = None
        self._blocked: dict[str, float] = {}
        self._audited: dict[str, float] = {}

    async def __call__(self, authorization: str | None, client: str) -> Identity:
        """Authenticate one request from ``client`` (its address)."""
        now = self.clock()
        blocked_until = self._blocked.get(client)
        if blocked_until is not None:
            if blocked_until > now:
                raise self._throttled(blocked_until - now)
            del self._blocked[client]
        try:
            creds = parse_authorization(authorization)
            if isinstance(creds, BasicCredentials):
                return await self._basic(creds, now)
            if self.bearer is None:
                raise Unauthenticated("invalid credentials", reason="unknown")
            return await self.bearer(creds.token)
        except Unauthenticated as exc:
            self.metrics.auth_failure(exc.reason)
            await self._count_failure(client, now)
            raise

    async def _basic(self, creds: BasicCredentials, now: float) -> Identity:
        generation = self.cache.generation
        credential = self.cache.get(creds.token)
        if credential is None:
            credential = await self._load(creds.token)
            if credential is not None:
                self.cache.put(creds.token, credential, generation=generation)
        ok = credential is not None and self.keys.verify_secret(
            creds.secret, credential.record.secret_hash
        )
        try:
            identity = authenticate(
                credential, secret_ok=ok, now=now,
                personal_cutoff=self.settings.personal_tokens.cutoff,
            )
        except Unauthenticated as exc:
            if credential is not None and exc.reason in ("revoked", "expired"):
                await self._audit_presented(credential, exc.reason, now)
            raise
        self.last_used.mark(identity.token, now)
        return identity

    async def _audit_presented(self, credential: Credential, reason: str, now: float) -> None:
        """Audit a revoked or expired token being used, at most once a minute per token.

        The audit log is bounded; a client retrying a dead token in a loop
        must not push every other event out of it.
        """
        token = credential.record.token
        if now - self._audited.get(token, -AUDIT_EVERY) < AUDIT_EVERY:
            return
        if len(self._audited) >= BLOCKED_MAX:
            self._audited.clear()
        self._audited[token] = now
        record = credential.record
        await self.store.append_audit(AuditEvent(
            now, f"token.presented_{reason}", record.owner, token, record.workspace, {}))

    async def _load(self, token: str) -> Credential | None:
        start = time.perf_counter()
        failed = True
        try:
            credential = await self.store.load_credential(token)
            failed = False
            return credential
        finally:
            self.metrics.store_call("load_credential", time.perf_counter() - start, failed=failed)

    async def _count_failure(self, client: str, now: float) -> None:
        limits = self.settings.rate_limit.auth_failures
        decision = await self.store.hit_rate_limit(
            "authfail:" + client, limits.limit, limits.window_seconds
        )
        if decision.remaining == 0 or not decision.allowed:
            if len(self._blocked) >= BLOCKED_MAX:
                self._blocked.clear()
            self._blocked[client] = now + max(decision.reset, 0.001)
        if not decision.allowed:
            raise self._throttled(decision.retry_after)

    def _throttled(self, seconds: float) -> TooManyRequests:
        return TooManyRequests(
            "too many failed authentication attempts from this address; slow down",
            headers={"Retry-After": str(max(1, math.ceil(seconds)))},
        )
