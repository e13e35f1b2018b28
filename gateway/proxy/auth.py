"""Authenticate a proxied request: header → credential → identity.

The credential comes from the in-process cache when it can (no store round
trip), from the store otherwise. Failed attempts are throttled per client
address without touching the presented token's quota.
"""

from __future__ import annotations

import ipaddress
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
from gateway.store.base import Invalidation, Store

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.metrics import Metrics

BearerResolver = Callable[[str], Awaitable[Identity]]

# Local memory of addresses that used up their failure budget: they get 429
# until then without a store call (each replica learns it on its own).
BLOCKED_MAX = 100_000
AUDIT_EVERY = 60.0
VERIFIED_MAX = 100_000


def client_key(address: str) -> str:
    """The key failed attempts are counted under: the address, or its /64 for IPv6.

    An IPv6 client usually controls a whole /64 and could otherwise rotate
    addresses to escape the limit.
    """
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network(address + "/64", strict=False))
    except ValueError:
        return address


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
        self._verified: dict[str, tuple[str, int]] = {}

    async def __call__(self, authorization: str | None, address: str) -> Identity:
        """Authenticate one request from ``address`` (the peer's IP)."""
        now = self.clock()
        client = client_key(address)
        blocked_until = self._blocked.get(client)
        if blocked_until is not None:
            if blocked_until > now:
                raise self._throttled(blocked_until - now)
            del self._blocked[client]
        try:
            verified = self._verified.get(authorization) if authorization else None
            if verified is not None and verified[1] == self.cache.generation:
                credential = self.cache.get(verified[0])
                if credential is not None:
                    return await self._checked(credential, True, now)
            creds = parse_authorization(authorization)
            if isinstance(creds, BasicCredentials):
                return await self._basic(creds, authorization or "", now)
            if self.bearer is None:
                raise Unauthenticated("invalid credentials", reason="unknown")
            return await self.bearer(creds.token)
        except Unauthenticated as exc:
            self.metrics.auth_failure(exc.reason)
            if authorization:
                # Only a presented credential is a guess; a bare request (a
                # browser before its challenge, a probe) must not get a
                # whole NAT'd office throttled.
                await self._count_failure(client, now)
            raise

    async def _basic(self, creds: BasicCredentials, header: str, now: float) -> Identity:
        generation = self.cache.generation
        credential = self.cache.get(creds.token)
        if credential is None:
            credential = await self._load(creds.token)
            if credential is not None:
                self.cache.put(creds.token, credential, generation=generation)
        ok = credential is not None and self.keys.verify_secret(
            creds.secret, credential.record.secret_hash
        )
        identity = await self._checked(credential, ok, now)
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        # Remember that this exact header verified, for as long as the cached
        # credential stays valid: repeat requests skip decoding, checksums and
        # the HMAC. Any invalidation bumps the generation and forgets it.
        self._verified[header] = (creds.token, generation)
        return identity

    async def _checked(self, credential: Credential | None, ok: bool, now: float) -> Identity:
        try:
            return self._identity(credential, ok, now)
        except Unauthenticated as exc:
            if credential is not None and exc.reason in ("revoked", "expired"):
                await self._audit_presented(credential, exc.reason, now)
            raise

    def _identity(self, credential: Credential | None, ok: bool, now: float) -> Identity:
        identity = authenticate(
            credential, secret_ok=ok, now=now,
            personal_cutoff=self.settings.personal_tokens.cutoff,
        )
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
            until = now + max(decision.reset, 0.001)
            self.block(client, until)
            # Tell every replica, so none answers this address's next guess
            # with a verdict (a 200 for the right secret would be an oracle).
            await self.store.publish(Invalidation("block", client, until))
        if not decision.allowed:
            raise self._throttled(decision.retry_after)

    def block(self, client: str, until: float) -> None:
        """Throttle ``client`` (an address key) until ``until`` without store calls."""
        if len(self._blocked) >= BLOCKED_MAX:
            self._blocked.clear()
        if until > self._blocked.get(client, 0.0):
            self._blocked[client] = until

    def _throttled(self, seconds: float) -> TooManyRequests:
        return TooManyRequests(
            "too many failed authentication attempts from this address; slow down",
            headers={"Retry-After": str(max(1, math.ceil(seconds)))},
        )
