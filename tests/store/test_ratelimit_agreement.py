"""The Redis script and the memory limiter agree with the reference decision, exactly."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
import redis.asyncio
import redis.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.policy.ratelimit import RateDecision, decide, peek, refund
from gateway.store.cluster import SlotRouter, parse_cluster_url
from gateway.store.cluster_client import ClusterClient
from gateway.store.ratelimit_memory import MemoryRateLimiter
from gateway.store.ratelimit_redis import RedisRateLimiter
from gateway.store.resp import HotPath, RespConnection
from tests.conftest import FakeClock, free_port

S = 1_000_000
T0 = 1_800_000_000 * S
_examples = itertools.count()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the run's private Redis, closed after the test."""
    c = redis.asyncio.Redis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.fixture(params=["redis", "cluster"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, HotPath]]:
    """The script's two ways in (redis-py or the store's cluster client; the lean
    connection or the cluster's slot router), on one Redis or on the run's cluster."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        client: Any = redis.asyncio.Redis.from_url(url)
        fast: HotPath = RespConnection(url)
    else:
        router = SlotRouter(parse_cluster_url(request.getfixturevalue("cluster_url")))
        client, fast = ClusterClient(router), router
    yield client, fast
    await fast.close()
    await client.aclose()


@dataclass(frozen=True)
class Op:
    """One request in a generated sequence."""

    key: int
    record: bool  # hit, else peek
    step_us: int  # time since the previous request
    limit: int | None  # None: the key's own limit; else a changed (raised or lowered) limit


@dataclass(frozen=True)
class Scenario:
    """Per-key limits and windows, a start time, and the requests."""

    limits: list[int]
    windows_us: list[int]
    start_us: int
    ops: list[Op]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Random keys, limits, windows and microsecond time steps, biased toward the edges."""
    keys = draw(st.integers(1, 3))
    limits = draw(st.lists(st.integers(1, 5), min_size=keys, max_size=keys))
    # Windows of at least a second: the key's TTL runs on Redis's real clock,
    # so it must outlast the example even though the test's time is explicit.
    windows = draw(st.lists(st.integers(S, 5 * S), min_size=keys, max_size=keys))
    ops = []
    for _ in range(draw(st.integers(1, 40))):
        key = draw(st.integers(0, keys - 1))
        window = windows[key]
        step = draw(
            st.one_of(
                st.just(0),  # two requests in the same microsecond
                st.integers(1, 50),
                st.integers(0, window // limits[key]),
                st.sampled_from([window - 1, window, window + 1]),
                st.integers(0, 2 * window),
            )
        )
        limit = draw(st.one_of(st.none(), st.integers(1, 6)))
        ops.append(Op(key, draw(st.booleans()), step, limit))
    return Scenario(limits, windows, T0 + draw(st.integers(0, S)), ops)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
async def test_redis_memory_and_reference_agree(
    scenario: Scenario, backend: tuple[Any, HotPath]
) -> None:
    """Any request sequence gets identical decisions from the pure function, Redis and memory."""
    client, fast = backend
    example = next(_examples)
    on_redis = RedisRateLimiter(client, prefix=f"test{example}:")
    on_fast = RedisRateLimiter(client, prefix=f"fast{example}:", fast=fast)
    clock = FakeClock()
    in_memory = MemoryRateLimiter(clock)
    logs: dict[int, list[int]] = {}
    now = scenario.start_us
    for op in scenario.ops:
        now += op.step_us
        clock.now = now / S  # the memory limiter reads this fake epoch clock
        limit = op.limit or scenario.limits[op.key]
        window_us = scenario.windows_us[op.key]
        window_s = window_us / S
        key = f"user-{op.key}"
        log = logs.get(op.key, [])
        expected: RateDecision
        if op.record:
            expected, logs[op.key] = decide(log, now, limit, window_us)
            got_redis = await on_redis.hit(key, limit, window_s, now_us=now)
            got_fast = await on_fast.hit(key, limit, window_s, now_us=now)
            got_memory = await in_memory.hit(key, limit, window_s)
        else:
            expected = peek(log, now, limit, window_us)
            got_redis = await on_redis.peek(key, limit, window_s, now_us=now)
            got_fast = await on_fast.peek(key, limit, window_s, now_us=now)
            got_memory = await in_memory.peek(key, limit, window_s)
        assert got_redis == expected, op
        assert got_fast == expected, op
        assert got_memory == expected, op


@st.composite
def attempts(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int | None]]]:
    """A limit, a window, and steps of (time step, None to reserve | i to refund reservation i)."""
    limit = draw(st.integers(1, 4))
    window = draw(st.integers(S, 3 * S))
    steps: list[tuple[int, int | None]] = []
    made = 0
    for _ in range(draw(st.integers(1, 30))):
        step = draw(st.one_of(st.just(0), st.integers(1, 50),
                              st.sampled_from([window - 1, window, window + 1])))
        target = draw(st.one_of(st.none(), st.integers(0, made - 1))) if made else None
        made += target is None
        steps.append((step, target))
    return limit, window, steps


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=attempts())
async def test_reserve_and_refund_agree_with_the_reference(
    case: tuple[int, int, list[tuple[int, int | None]]],
    backend: tuple[Any, HotPath],
) -> None:
    """Reservations and refunds (also of rejected, refunded or expired ones) decide the same
    in the pure function, the Redis script (both connections) and the memory limiter."""
    client, fast = backend
    limit, window_us, steps = case
    example = next(_examples)
    on_redis = RedisRateLimiter(client, prefix=f"rtest{example}:")
    on_fast = RedisRateLimiter(client, prefix=f"rfast{example}:", fast=fast)
    clock = FakeClock()
    in_memory = MemoryRateLimiter(clock)
    log: list[int] = []
    stamps: list[int | None] = []  # per reservation: when admitted, None if rejected
    now, window_s = T0, window_us / S
    for step, target in steps:
        now += step
        clock.now = now / S
        if target is None:
            expected, log = decide(log, now, limit, window_us)
            got = [await on_redis.reserve("k", limit, window_s, now_us=now),
                   await on_fast.reserve("k", limit, window_s, now_us=now),
                   await in_memory.reserve("k", limit, window_s)]
            assert {r.at_us for r in got} == {now if expected.allowed else None}
            assert [r.decision for r in got] == [expected] * 3
            stamps.append(now if expected.allowed else None)
        else:
            at = stamps[target]
            if at is None:
                continue  # a rejected attempt holds no slot to give back
            expected, log = refund(log, now, at, limit, window_us)
            decisions = [await on_redis.refund("k", limit, window_s, at_us=at, now_us=now),
                         await on_fast.refund("k", limit, window_s, at_us=at, now_us=now),
                         await in_memory.refund("k", limit, window_s, at_us=at)]
            assert decisions == [expected] * 3


async def test_same_microsecond_requests_each_count(client: redis.asyncio.Redis) -> None:
    """Requests sharing a microsecond are stored as distinct entries, so none escapes the count."""
    limiter = RedisRateLimiter(client)
    decisions = [await limiter.hit("alice", 3, 10, now_us=T0) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    assert await client.zcard("tg:rl:{alice}") == 3


async def test_script_sets_ttl_so_idle_keys_expire(client: redis.asyncio.Redis) -> None:
    """An admitted request leaves the key expiring one window later; a peek creates no key."""
    limiter = RedisRateLimiter(client)
    await limiter.peek("bob", 40, 10)
    assert await client.exists("tg:rl:{bob}") == 0
    await limiter.hit("bob", 40, 10)
    ttl_ms = await client.pttl("tg:rl:{bob}")
    assert 9_000 < ttl_ms <= 10_000
    await limiter.hit("carol", 1, 0.25)
    assert 0 < await client.pttl("tg:rl:{carol}") <= 250


async def redis_now_us(client: redis.asyncio.Redis) -> int:
    """The Redis server's clock in microseconds."""
    seconds, micros = await client.time()
    return seconds * S + micros


async def test_redis_time_is_used_without_now(client: redis.asyncio.Redis) -> None:
    """Without now_us the script takes Redis TIME: entries are stamped with the server's clock."""
    limiter = RedisRateLimiter(client)
    before = await redis_now_us(client)
    decisions = [await limiter.hit("dave", 2, 10) for _ in range(3)]
    after = await redis_now_us(client)
    assert [d.allowed for d in decisions] == [True, True, False]
    assert 0 < decisions[-1].retry_after <= 10
    entries = await client.zrange("tg:rl:{dave}", 0, -1, withscores=True)
    stamps = [score for _, score in cast("list[tuple[bytes, float]]", entries)]
    assert len(stamps) == 2
    assert all(before <= s <= after for s in stamps)


async def test_limit_is_exact_across_concurrent_replicas(redis_url: str) -> None:
    """Three replicas with their own connections, 60 concurrent requests: exactly 40 admitted."""
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(3)]
    try:
        replicas = [RedisRateLimiter(c) for c in clients]
        decisions = await asyncio.gather(*(replicas[i % 3].hit("erin", 40, 10) for i in range(60)))
    finally:
        for c in clients:
            await c.aclose()
    assert sum(d.allowed for d in decisions) == 40
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(40))


async def test_limit_is_exact_across_concurrent_replicas_on_a_cluster(cluster_url: str) -> None:
    """Three replicas each routing through its own slot router, 60 concurrent requests on
    a cluster: exactly 40 admitted."""
    routers = [SlotRouter(parse_cluster_url(cluster_url)) for _ in range(3)]
    try:
        replicas = [RedisRateLimiter(ClusterClient(r), fast=r) for r in routers]
        decisions = await asyncio.gather(*(replicas[i % 3].hit("erin", 40, 10) for i in range(60)))
    finally:
        for r in routers:
            await r.close()
    assert sum(d.allowed for d in decisions) == 40
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(40))


async def test_prefix_and_hash_tag_form_the_key(client: redis.asyncio.Redis) -> None:
    """Keys are ``{prefix}rl:{<key>}`` so every key of one subject shares a cluster hash tag."""
    limiter = RedisRateLimiter(client, prefix="edge:")
    assert limiter.redis_key("tok_abc") == "edge:rl:{tok_abc}"
    await limiter.hit("tok_abc", 1, 1)
    assert await client.exists("edge:rl:{tok_abc}") == 1


async def test_redis_errors_propagate() -> None:
    """An unreachable Redis raises instead of admitting, so the caller can fail closed."""
    client = redis.asyncio.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await RedisRateLimiter(client).hit("frank", 40, 10)
    finally:
        await client.aclose()


async def test_memory_limiter_drops_idle_keys(clock: FakeClock) -> None:
    """Keys whose entries have all left the window are swept, so memory tracks active keys only."""
    limiter = MemoryRateLimiter(clock)
    for i in range(2000):
        await limiter.hit(f"k{i}", 40, 10)
    assert len(limiter) == 2000
    clock.advance(10)
    for i in range(2000):  # the amortised sweep runs along with ordinary checks
        await limiter.hit("active", 40, 10)
    assert len(limiter) == 1
    await limiter.hit("other", 1, 1)
    clock.advance(1)
    limiter.sweep()
    assert len(limiter) == 1


async def test_memory_limiter_uses_its_clock(clock: FakeClock) -> None:
    """The memory limiter reads the injected clock, so the window reopens when it advances."""
    limiter = MemoryRateLimiter(clock)
    assert (await limiter.hit("gina", 1, 10)).allowed
    rejected = await limiter.hit("gina", 1, 10)
    assert not rejected.allowed
    assert rejected.retry_after == 10
    clock.advance(rejected.retry_after)
    assert (await limiter.peek("gina", 1, 10)).allowed
    assert (await limiter.hit("gina", 1, 10)).allowed
