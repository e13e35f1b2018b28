"""Authenticate a proxied request: header → credential → identity.

The credential comes from the in-process cache when it can (no store round
trip), from the store otherwise. Failed attempts are throttled per client
address without touching the presented token's quota.

Count first: a Basic credential that must be checked (not one this process
already verified) takes a slot of its address's failure budget *before* its
secret is compared, and gives it back if the secret was right. A burst of
parallel guesses therefore gets at most ``limit`` verdicts; every later
attempt from that address, the right secret included, is a 429.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from base64 import b64encode
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway.keys import Keys
from gateway.policy.authheader import BasicCredentials, parse_authorization
from gateway.policy.authn import authenticate
from gateway.policy.errors import TooManyRequests, Unauthenticated
from gateway.policy.model import AuditEvent, Credential, Identity
from gateway.policy.ratelimit import RateDecision, Reservation
from gateway.policy.rolling import secret_match, trusted_until
from gateway.proxy.cache import CredentialCache
from gateway.proxy.lastused import LastUsed
from gateway.store.base import Invalidation, Store

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.metrics import Metrics

BearerResolver = Callable[[str], Awaitable[Identity]]
log = logging.getLogger("tokengate.auth")

# Local memory of addresses that used up their failure budget: they get 429
# until then without a store call (each replica learns it on its own).
BLOCKED_MAX = 100_000
AUDIT_EVERY = 60.0
VERIFIED_MAX = 100_000
# A refused reservation while this process still checks other attempts of the
# same address waits for them (right ones give their slots back) and asks
# again, this many times at most: a backend presenting many users' tokens at
# once from one address is not throttled for its own concurrency.
RESERVE_ROUNDS = 3


def client_key(address: str) -> str:
    """The key failed attempts are counted under: the address, or its /64 for IPv6.

    An IPv6 client usually controls a whole /64 and could otherwise rotate
    addresses to escape the limit. An IPv4-mapped address (``::ffff:a.b.c.d``,
    from a dual-stack socket) is the IPv4 client it names.
    """
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def memo_key(creds: BasicCredentials) -> str:
    """The one spelling of a Basic credential the verified memo is keyed on.

    It is what clients send (``Basic`` + standard base64), so their header
    finds the memo with a single dict lookup; any other spelling of the same
    credential is parsed and mapped here, so it cannot add entries.
    """
    return "Basic " + b64encode(f"{creds.token}:{creds.secret}".encode()).decode()


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
        # memo_key -> (token, cache generation, trusted until): credentials that
        # verified; a rolled-away secret only until its grace period ends.
        self._verified: dict[str, tuple[str, int, float]] = {}
        # (client, memo_key) -> done: checks in flight, so that concurrent copies
        # of one request wait for its verdict instead of each spending an attempt.
        self._flights: dict[tuple[str, str], asyncio.Future[None]] = {}
        # client -> checks in flight that hold a slot of its failure budget.
        self._holding: dict[str, set[asyncio.Future[None]]] = {}
        self._refunds: set[asyncio.Future[RateDecision]] = set()  # in flight, kept referenced

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
            # The hot path: a header this process verified, spelled as clients do.
            verified = self._verified.get(authorization) if authorization else None
            if verified is not None and verified[1] == self.cache.generation \
                    and now < verified[2]:
                credential = self.cache.get(verified[0])
                if credential is not None:
                    return await self._checked(credential, True, now)
            creds = parse_authorization(authorization)
            if not isinstance(creds, BasicCredentials):
                if self.bearer is None:
                    raise Unauthenticated("invalid credentials", reason="unknown")
                return await self.bearer(creds.token)
            key = memo_key(creds)
            if key != authorization:  # another spelling of a maybe verified credential
                identity = await self._remembered(key, now)
                if identity is not None:
                    return identity
        except Unauthenticated as exc:
            self.metrics.auth_failure(exc.reason)
            if authorization:
                # Only a presented credential is a guess; a bare request (a
                # browser before its challenge, a probe) must not get a
                # whole NAT'd office throttled.
                await self._count_failure(client, now)
            raise
        return await self._basic(creds, key, client, now)

    async def _remembered(self, key: str, now: float) -> Identity | None:
        """The identity of a credential this process verified (no HMAC), or None."""
        verified = self._verified.get(key)
        if verified is None or verified[1] != self.cache.generation or now >= verified[2]:
            return None
        credential = self.cache.get(verified[0])
        if credential is None:
            return None
        return await self._checked(credential, True, now)

    async def _basic(self, creds: BasicCredentials, key: str, client: str,
                     now: float) -> Identity:
        flight_key = (client, key)
        flight = self._flights.get(flight_key)
        if flight is not None:
            # The same credential from the same address is being checked: its
            # verdict (a memo entry on success) serves this request too.
            await asyncio.shield(flight)
        done = asyncio.get_running_loop().create_future()
        self._flights[flight_key] = done
        try:
            return await self._verify(creds, key, client, now)
        finally:
            if self._flights.get(flight_key) is done:
                del self._flights[flight_key]
            done.set_result(None)

    async def _verify(self, creds: BasicCredentials, key: str, client: str,
                      now: float) -> Identity:
        reservation: Reservation | None = None
        holding = asyncio.get_running_loop().create_future()
        try:
            identity = await self._remembered(key, now)  # the check waited for succeeded
            if identity is not None:
                return identity
            generation = self.cache.generation
            credential = self.cache.get(creds.token)
            if credential is not None:
                reservation = await self._reserve(client, holding)
            else:
                # The reservation and the credential load go out together, so
                # the cold path gains no round trip.
                reserved, loaded = await asyncio.gather(
                    self._reserve(client, holding), self.cache.load(creds.token, self._load),
                    return_exceptions=True)
                if isinstance(reserved, BaseException):
                    raise reserved
                reservation = reserved
                if isinstance(loaded, BaseException):
                    # The store could not answer (503): no secret was judged, so
                    # no failed attempt is counted (else a failover would
                    # throttle every client whose credential it caught cold).
                    if reservation.at_us is not None:
                        self._refund_soon(client, reservation.at_us)
                    raise loaded
                credential = loaded
            # The current secret, or a rolled-away one inside its grace period.
            match = None if credential is None else secret_match(
                credential.record, self.keys.hash_secret(creds.secret), now)
            identity = await self._checked(credential, match is not None, now)
            assert credential is not None  # _checked refuses a missing one
            if len(self._verified) >= VERIFIED_MAX:
                self._verified.clear()
            # Remember that this credential verified, for as long as the cached
            # credential stays valid (a rolled-away secret: until its grace
            # ends): repeat requests skip decoding, checksums, the HMAC and the
            # budget. Any invalidation bumps the generation.
            self._verified[key] = (creds.token, generation,
                                   trusted_until(credential.record, match))
            if reservation is not None and reservation.at_us is not None:
                self._refund_soon(client, reservation.at_us)  # before waiters retry
            return identity
        except Unauthenticated as exc:
            self.metrics.auth_failure(exc.reason)
            if reservation is None:  # failed before reserving (a remembered, now expired one)
                await self._count_failure(client, now)
            raise
        finally:
            self._release(client, holding)

    def _release(self, client: str, holding: asyncio.Future[None]) -> None:
        held = self._holding.get(client)
        if held is not None:
            held.discard(holding)
            if not held:
                del self._holding[client]
        if not holding.done():
            holding.set_result(None)

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

    async def _reserve(self, client: str, holding: asyncio.Future[None]) -> Reservation:
        """A slot of ``client``'s failure budget, taken before its secret is checked; else 429."""
        limits = self.settings.rate_limit.auth_failures
        for _ in range(RESERVE_ROUNDS):
            reservation = await self.store.reserve_rate_limit(
                "authfail:" + client, limits.limit, limits.window_seconds)
            if reservation.decision.allowed:
                self._holding.setdefault(client, set()).add(holding)
                return reservation
            # Only checks holding a slot are waited for: they settle quickly and
            # never wait themselves, so no two attempts wait on each other.
            others = list(self._holding.get(client, ()))
            if not others:
                break
            await asyncio.wait(others, timeout=self.settings.store.timeout_seconds)
        await self._block_for(client, reservation.decision)
        raise self._throttled(reservation.decision.retry_after)

    def _refund_soon(self, client: str, at_us: int) -> None:
        """Give a right secret's slot back without waiting for the store's reply.

        The refund leaves on the pipelined connection ahead of this request's
        rate-limit call, so the response waits one round trip, not two. If it
        is lost, the slot stays taken: one attempt too many counted, never one
        too few.
        """
        limits = self.settings.rate_limit.auth_failures
        task = asyncio.ensure_future(self.store.refund_rate_limit(
            "authfail:" + client, limits.limit, limits.window_seconds, at_us=at_us))
        self._refunds.add(task)
        task.add_done_callback(self._refunded)

    def _refunded(self, task: asyncio.Future[RateDecision]) -> None:
        self._refunds.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("failed-auth refund lost: %s", type(task.exception()).__name__)

    async def _count_failure(self, client: str, now: float) -> None:
        """Count a failure that needed no reservation (malformed, bearer, remembered)."""
        limits = self.settings.rate_limit.auth_failures
        decision = await self.store.hit_rate_limit(
            "authfail:" + client, limits.limit, limits.window_seconds
        )
        if decision.remaining == 0 or not decision.allowed:
            await self._block_for(client, decision)
        if not decision.allowed:
            raise self._throttled(decision.retry_after)

    async def _block_for(self, client: str, decision: RateDecision) -> None:
        until = self.clock() + max(decision.reset, 0.001)
        if until <= self._blocked.get(client, 0.0):
            return  # already known (a concurrent attempt told everyone)
        self.block(client, until)
        # Tell every replica, so none spends a store call on this address's
        # next attempts (none could give a verdict: the budget is full).
        await self.store.publish(Invalidation("block", client, until))

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
