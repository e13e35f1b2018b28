"""Sliding-window rate limits kept in Redis, exact across every gateway replica.

Each check is one EVALSHA of ``lua/ratelimit.lua`` (redis-py's registered
script falls back to loading it on NOSCRIPT), so it costs one round trip and
runs atomically. Redis errors propagate; the caller fails closed with 503.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import redis.asyncio

from gateway.policy.ratelimit import RateDecision, Reservation, decision_from, window_micros
from gateway.store.cluster_client import ClusterClient
from gateway.store.layout import Layout
from gateway.store.resp import HotPath, RespError, pack

_SCRIPT = (Path(__file__).parent / "lua" / "ratelimit.lua").read_text("utf-8")
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()
# Two windows at once (the user's and a token's own), for tokens with a limit of their own.
_BOTH = (Path(__file__).parent / "lua" / "ratelimit_both.lua").read_text("utf-8")
_BOTH_SHA = hashlib.sha1(_BOTH.encode()).hexdigest()
Window = tuple[str, int, float]
"""A window to check: (key, limit, window_seconds)."""


class RedisRateLimiter:
    """Rate limits as sorted sets of admitted timestamps, one key per limited subject.

    Key layout: ``{prefix}rl:{<key>}``, a sorted set whose members are unique
    per request and whose scores are admission times in microseconds. The
    braces make ``<key>`` the hash tag, so the key is cluster safe. It expires
    one window after its newest entry.
    """

    def __init__(
        self, client: redis.asyncio.Redis | ClusterClient, prefix: str = "tg:",
        *, fast: HotPath | None = None,
    ) -> None:
        self._client = client
        self._layout = Layout(prefix)
        self._script = client.register_script(_SCRIPT)
        self._both = client.register_script(_BOTH)
        # The hot path: a lean pipelined connection instead of redis-py
        # (see gateway/store/resp.py for why); None uses redis-py.
        self._fast = fast

    def redis_key(self, key: str) -> str:
        """The Redis key holding the window for ``key``."""
        return self._layout.rate_limit(key)

    async def hit(
        self, key: str, limit: int, window_seconds: float, *, now_us: int | None = None
    ) -> RateDecision:
        """Admit and record a request for ``key`` if its window has room (time from Redis TIME)."""
        return (await self._run("hit", key, limit, window_seconds, now_us))[0]

    async def reserve(
        self, key: str, limit: int, window_seconds: float, *, now_us: int | None = None
    ) -> Reservation:
        """:meth:`hit`, also saying when the admission was recorded (for :meth:`refund`)."""
        decision, at_us = await self._run("hit", key, limit, window_seconds, now_us)
        return Reservation(decision, at_us if decision.allowed else None)

    async def refund(
        self, key: str, limit: int, window_seconds: float, *, at_us: int,
        now_us: int | None = None,
    ) -> RateDecision:
        """Take back the admission :meth:`reserve` recorded at ``at_us``; the window after."""
        return (await self._run("refund", key, limit, window_seconds, now_us, at_us))[0]

    async def peek(
        self, key: str, limit: int, window_seconds: float, *, now_us: int | None = None
    ) -> RateDecision:
        """Whether a request for ``key`` would be admitted now, recording nothing."""
        return (await self._run("peek", key, limit, window_seconds, now_us))[0]

    async def _run(
        self, mode: str, key: str, limit: int, window_seconds: float, now_us: int | None,
        at_us: int | None = None,
    ) -> tuple[RateDecision, int]:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1, got {limit!r}")
        window_us = window_micros(window_seconds)
        args: list[Any] = [limit, window_us, mode, "" if now_us is None else now_us]
        if at_us is not None:
            args.append(at_us)
        if self._fast is not None:
            allowed, count, reset_us, used_us = await self._run_fast(self.redis_key(key), args)
        else:
            allowed, count, reset_us, used_us = await self._script(
                keys=[self.redis_key(key)], args=args)
        decision = decision_from(
            allowed=bool(allowed), limit=limit, count=int(count), reset_us=int(reset_us)
        )
        return decision, int(used_us)

    async def _run_fast(self, redis_key: str, args: list[Any]) -> Any:
        assert self._fast is not None
        try:
            return await self._fast.call(pack("EVALSHA", _SHA, 1, redis_key, *args), key=redis_key)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            # First call on this server (or after SCRIPT FLUSH): send it whole.
            return await self._fast.call(pack("EVAL", _SCRIPT, 1, redis_key, *args),
                                     key=redis_key)

    async def hit_both(
        self, first: Window, second: Window, *, now_us: int | None = None
    ) -> tuple[RateDecision, RateDecision]:
        """Admit a request into both windows or neither, in one script call."""
        keys = [self.redis_key(first[0]), self.redis_key(second[0])]
        args: list[Any] = []
        for _, limit, window_seconds in (first, second):
            if limit < 1:
                raise ValueError(f"rate limit must be at least 1, got {limit!r}")
            args += [limit, window_micros(window_seconds)]
        args.append("" if now_us is None else now_us)
        if self._fast is not None:
            reply = await self._run_fast_both(keys, args)
        else:
            reply = await self._both(keys=keys, args=args)
        allowed1, count1, reset1, allowed2, count2, reset2, _ = reply
        return (
            decision_from(allowed=bool(allowed1), limit=first[1], count=int(count1),
                          reset_us=int(reset1)),
            decision_from(allowed=bool(allowed2), limit=second[1], count=int(count2),
                          reset_us=int(reset2)),
        )

    async def _run_fast_both(self, keys: list[str], args: list[Any]) -> Any:
        assert self._fast is not None
        try:
            return await self._fast.call(pack("EVALSHA", _BOTH_SHA, len(keys), *keys, *args),
                                         key=keys[0])
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self._fast.call(pack("EVAL", _BOTH, len(keys), *keys, *args),
                                     key=keys[0])
