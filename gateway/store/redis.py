"""The production store: Redis, through redis.asyncio (with hiredis).

:class:`RedisStore` is put together from one part per thing it stores
(``redis_users``, ``redis_tokens``, ``redis_workspaces``, ``redis_trusted``,
``redis_pubsub``, ``redis_expiring``) over the shared connections of ``redis_base``; every key
name is built in ``layout``, and records are (de)serialised in ``codec``.

Every multi-key change is one Lua script, so it is atomic and costs one
round trip; revocations publish their invalidation inside the same script.
"""

from __future__ import annotations

from gateway.policy.ratelimit import RateDecision, Reservation
from gateway.store.base import RateWindow
from gateway.store.redis_base import DEFAULT_MAX_CONNECTIONS, _wrap_errors
from gateway.store.redis_expiring import RedisExpiring
from gateway.store.redis_pubsub import RedisPubSub
from gateway.store.redis_tokens import TOUCH_BATCH, RedisTokens
from gateway.store.redis_trusted import RedisTrusted
from gateway.store.redis_users import RedisUsers
from gateway.store.redis_workspaces import RedisWorkspaces

__all__ = ["DEFAULT_MAX_CONNECTIONS", "TOUCH_BATCH", "RedisStore"]


class RedisStore(RedisUsers, RedisExpiring, RedisTokens, RedisWorkspaces, RedisTrusted,
                 RedisPubSub):
    """Store on one Redis server (``redis://``, ``rediss://``, ``unix://``), or on the
    master that Sentinel names (``redis+sentinel://``)."""

    # rate limits
    @_wrap_errors
    async def hit_rate_limit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """One atomic script call (time from Redis itself)."""
        return await self._limiter.hit(key, limit, window_seconds)

    @_wrap_errors
    async def hit_rate_limit_both(
        self, first: RateWindow, second: RateWindow
    ) -> tuple[RateDecision, RateDecision]:
        """Both windows in one atomic script call (time from Redis itself); on a
        cluster their keys share a slot (``policy.ratelimit.window_key``)."""
        return await self._limiter.hit_both(first, second)

    @_wrap_errors
    async def peek_rate_limit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """Would a request be admitted now? Records nothing."""
        return await self._limiter.peek(key, limit, window_seconds)

    @_wrap_errors
    async def reserve_rate_limit(self, key: str, limit: int, window_seconds: float) -> Reservation:
        """One atomic script call that also returns the admission's timestamp."""
        return await self._limiter.reserve(key, limit, window_seconds)

    @_wrap_errors
    async def refund_rate_limit(
        self, key: str, limit: int, window_seconds: float, *, at_us: int
    ) -> RateDecision:
        """Take back a reserved admission, in one atomic script call."""
        return await self._limiter.refund(key, limit, window_seconds, at_us=at_us)
