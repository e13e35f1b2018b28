"""The two-window script (a user's window and a token's own) agrees with the reference."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy.ratelimit import decide, decide_both
from gateway.store.ratelimit_memory import MemoryRateLimiter
from gateway.store.ratelimit_redis import RedisRateLimiter
from gateway.store.resp import RespConnection
from tests.conftest import FakeClock

S = 1_000_000
T0 = 1_800_000_000 * S
_examples = itertools.count()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the run's private Redis, closed after the test."""
    c = redis.asyncio.Redis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.fixture
async def fast(redis_url: str) -> AsyncIterator[RespConnection]:
    """The lean pipelined connection the store uses for the hot-path call."""
    conn = RespConnection(redis_url)
    yield conn
    await conn.close()


@dataclass(frozen=True)
class Case:
    """Two tokens of one user: both count in the user's window, each in its own."""

    user: tuple[int, int]  # limit, window_us
    own: list[tuple[int, int]]  # per token
    steps: list[tuple[int, int, bool]]  # (time step, token, also in its own window?)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Limits, windows of 1-4 s, steps biased to the windows' edges, mixed single-window hits."""
    user = (draw(st.integers(1, 6)), draw(st.integers(S, 4 * S)))
    own = [(draw(st.integers(1, 4)), draw(st.integers(S, 4 * S))) for _ in range(2)]
    windows = [user[1], own[0][1], own[1][1]]
    steps = []
    for _ in range(draw(st.integers(1, 40))):
        step = draw(st.one_of(st.just(0), st.integers(1, 50), st.integers(0, S),
                              st.sampled_from([w + d for w in windows for d in (-1, 0, 1)])))
        steps.append((step, draw(st.integers(0, 1)), draw(st.booleans())))
    return Case(user, own, steps)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
async def test_two_windows_agree_in_redis_memory_and_the_reference(
        case: Case, client: redis.asyncio.Redis, fast: RespConnection) -> None:
    """Any sequence of requests (some counted in the user's window alone, as a token
    without its own limit is) decides identically in the pure function, the script on both
    connections and the memory limiter."""
    example = next(_examples)
    limiters = [RedisRateLimiter(client, prefix=f"both{example}:"),
                RedisRateLimiter(client, prefix=f"bothfast{example}:", fast=fast)]
    clock = FakeClock()
    memory = MemoryRateLimiter(clock)
    user_log: list[int] = []
    own_logs: list[list[int]] = [[], []]
    now = T0
    (user_limit, user_window) = case.user
    user_window_s = user_window / S
    for step, token, both in case.steps:
        now += step
        clock.now = now / S
        if both:
            limit, window = case.own[token]
            first, second, user_log, own_logs[token] = decide_both(
                user_log, own_logs[token], now, (user_limit, limit), (user_window, window))
            user_w = ("user", user_limit, user_window_s)
            own_w = (f"token:{token}", limit, window / S)
            for limiter in limiters:
                assert await limiter.hit_both(user_w, own_w, now_us=now) == (first, second)
            assert await memory.hit_both(user_w, own_w) == (first, second)
        else:
            expected, user_log = decide(user_log, now, user_limit, user_window)
            for limiter in limiters:
                assert await limiter.hit("user", user_limit, user_window_s, now_us=now) == expected
            assert await memory.hit("user", user_limit, user_window_s) == expected


async def test_both_windows_are_exact_across_concurrent_replicas(redis_url: str) -> None:
    """Three replicas, 30 concurrent requests, a token limited to 7 under a user's 40:
    exactly 7 admitted, and the user's window counts exactly those 7."""
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(3)]
    try:
        replicas = [RedisRateLimiter(c) for c in clients]
        results = await asyncio.gather(*(
            replicas[i % 3].hit_both(("user", 40, 10), ("token:t", 7, 10)) for i in range(30)))
        user_after = await replicas[0].peek("user", 40, 10)
    finally:
        for c in clients:
            await c.aclose()
    assert sum(a.allowed and b.allowed for a, b in results) == 7
    assert user_after.remaining == 33


async def test_both_windows_expire_when_idle(client: redis.asyncio.Redis) -> None:
    """An admitted request leaves each window's key expiring one of its windows later."""
    await RedisRateLimiter(client).hit_both(("u", 40, 10), ("token:t", 5, 0.5))
    assert 9_000 < await client.pttl("tg:rl:{u}") <= 10_000
    assert 0 < await client.pttl("tg:rl:{token:t}") <= 500
