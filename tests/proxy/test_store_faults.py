"""Store faults: dropped connections heal, and revocations still reach every cache."""

from __future__ import annotations

import asyncio

import aiohttp
import redis.asyncio as aioredis

from tests.conftest import ADMIN_KEY, InProcess, basic


async def status_of(url: str, auth: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Authorization": auth}) as r:
        return r.status


async def until_status(url: str, auth: str, want: int, seconds: float = 2.0) -> bool:
    """Poll in small steps until the proxy answers ``want``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await status_of(url, auth) == want:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_dropped_redis_connections_heal_and_revocation_still_propagates(
    make_gateway, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    """After Redis drops every client (data plane and pub/sub), requests work again and a
    revocation made afterwards still evicts the cached credential at once."""
    g: InProcess = await make_gateway()
    auth = basic(g.token, g.secret)
    assert await status_of(g.proxy + "/x", auth) == 200  # cached now
    admin = aioredis.Redis.from_url(redis_url)
    try:
        for client_type in ("normal", "pubsub"):
            await admin.execute_command("CLIENT", "KILL", "TYPE", client_type, "SKIPME", "yes")
    finally:
        await admin.aclose()
    assert await until_status(g.proxy + "/x", auth, 200)
    # The invalidation listener resubscribes; give it the same 1 s bound as revocation.
    async with aiohttp.ClientSession() as s:
        async with s.delete(g.admin + f"/admin/api/tokens/{g.token}",
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as r:
            assert r.status == 200
    assert await until_status(g.proxy + "/x", auth, 401, seconds=1.0)


async def test_store_hanging_is_503_then_recovers(make_gateway, redis_server) -> None:  # type: ignore[no-untyped-def]
    """While Redis does not answer, a cached credential still gets 503, never a pass-through;
    once it answers again, 200."""
    g: InProcess = await make_gateway({"store": {"timeout_seconds": 0.3}})
    auth = basic(g.token, g.secret)
    assert await status_of(g.proxy + "/x", auth) == 200  # the credential is cached
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        # Every client's commands wait for 2 s: each store call times out.
        await admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
        statuses = [await status_of(g.proxy + "/x", auth) for _ in range(2)]
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
    assert statuses == [503, 503]
    assert await until_status(g.proxy + "/x", auth, 200)
