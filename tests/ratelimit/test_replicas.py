"""Limits are exact across gateway processes that share one Redis, or one Redis Cluster."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from gateway.keys import generate_master_key
from tests.conftest import RecordingUpstream, basic
from tests.rules.support import GatewayFactory

STORES = ["redis_url", "cluster_url"]
LIMIT = 40
# Long enough that a burst of requests surely fits inside one window, so the
# counts below are exact without reading the clock.
WINDOW = 5


@pytest.mark.slow
@pytest.mark.parametrize("store", STORES)
async def test_three_processes_share_one_exact_window(
    gateway_factory: GatewayFactory, store: str, upstream: RecordingUpstream,
    request: pytest.FixtureRequest,
) -> None:
    """Concurrent requests spread over three processes: exactly the limit is admitted, each count once, then none."""
    redis_url = request.getfixturevalue(store)
    master = generate_master_key()
    env = {"TOKENGATE_RATE_LIMIT_LIMIT": str(LIMIT), "TOKENGATE_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
           "TOKENGATE_LOG_ACCESS": "false"}
    replicas = [gateway_factory(store_url=redis_url, upstream=upstream.url, master_key=master,
                                extra_env=env) for _ in range(3)]
    status, created = await asyncio.to_thread(
        replicas[0].admin_call, "POST", "/admin/api/tokens", {"type": "workspace", "name": "shared"})
    assert status == 201
    auth = {"Authorization": basic(created["token"], created["secret"])}
    status, warm = await asyncio.to_thread(
        replicas[0].admin_call, "POST", "/admin/api/tokens", {"type": "workspace", "name": "warm-up"})
    assert status == 201
    warm_auth = {"Authorization": basic(warm["token"], warm["secret"])}

    async def one(session: aiohttp.ClientSession, base: str) -> tuple[str, int, str | None]:
        async with session.get(base + "/api/default/reports", headers=auth) as r:
            await r.read()
            return base, r.status, r.headers.get("X-RateLimit-Remaining")

    targets = itertools.cycle([gp.proxy for gp in replicas])
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as s:
        # Warm each replica up (script loaded, pools open) with a token of its own quota.
        for gp in replicas:
            async with s.get(gp.proxy + "/", headers=warm_auth) as r:
                assert r.status == 200
        burst = await asyncio.gather(*(one(s, next(targets)) for _ in range(LIMIT + 20)))
        admitted = [r for r in burst if r[1] == 200]
        assert len(admitted) == LIMIT
        assert sorted(int(r[2] or -1) for r in admitted) == list(range(LIMIT))
        assert {r[1] for r in burst} == {200, 429}
        assert len({r[0] for r in admitted}) >= 2  # each replica got only 20 of the 60
        assert len(upstream.seen) == LIMIT + len(replicas)
        # The window is full for every replica alike.
        again = await asyncio.gather(*(one(s, next(targets)) for _ in range(15)))
        assert [r[1] for r in again] == [429] * 15
    assert len(upstream.seen) == LIMIT + len(replicas)


CLASS_CONFIG = """
[[rate_limit.classes]]
name = "burst"
path = "/burst/**"
limit = 10
window_seconds = 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", STORES)
async def test_no_window_ever_holds_more_than_the_limit_across_processes(
    gateway_factory: GatewayFactory, store: str, upstream: RecordingUpstream,
    request: pytest.FixtureRequest,
) -> None:
    """Hammering three processes for a few windows: by Redis's own clock, any 1 s holds at most 10 admissions, and windows reopen."""
    redis_url = request.getfixturevalue(store)
    master = generate_master_key()
    replicas = [gateway_factory(store_url=redis_url, upstream=upstream.url, master_key=master,
                                config_text=CLASS_CONFIG, extra_env={"TOKENGATE_LOG_ACCESS": "false"})
                for _ in range(3)]
    status, created = await asyncio.to_thread(
        replicas[0].admin_call, "POST", "/admin/api/tokens", {"type": "workspace", "name": "shared"})
    assert status == 201
    auth = {"Authorization": basic(created["token"], created["secret"])}
    key = f"tg:rl:burst:{{t:{created['token']}}}"
    admissions: dict[bytes, float] = {}
    # Only reads: redis-py's cluster client is fine for watching.
    client: Any = (aioredis.Redis.from_url(redis_url) if store == "redis_url" else
                   RedisCluster.from_url(redis_url.replace("redis+cluster", "redis").split(",")[0]))
    loop = asyncio.get_running_loop()
    stop = loop.time() + 2.5
    statuses: list[int] = []

    async def hammer(session: aiohttp.ClientSession, base: str) -> None:
        while loop.time() < stop:
            async with session.get(base + "/burst/x", headers=auth) as r:
                await r.read()
                statuses.append(r.status)

    async def watch() -> None:
        # Entries stay in the set for a whole window, so polling far more often
        # than that sees every admission (member -> Redis time in microseconds).
        while loop.time() < stop + 0.2:
            entries: Any = await client.zrange(key, 0, -1, withscores=True)
            admissions.update(entries)
            await asyncio.sleep(0.05)

    try:
        async with aiohttp.ClientSession() as s:
            await asyncio.gather(watch(), *(hammer(s, gp.proxy) for gp in replicas for _ in range(2)))
    finally:
        await client.aclose()
    times = sorted(admissions.values())
    assert len(times) == statuses.count(200) == len(upstream.seen)
    assert set(statuses) == {200, 429}
    window_us = 1_000_000
    # The (i+10)th admission comes only once the ith has left the window.
    assert all(later - earlier >= window_us for earlier, later in zip(times, times[10:]))
    assert len(times) >= 20  # the window reopened for the hammering clients at least once
