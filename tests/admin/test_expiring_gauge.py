"""tokengate_tokens_expiring and expires_in_days, through real gateway processes and Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio

from tests.admin.conftest import StartGw, seed
from tests.admin.support import Gw
from tests.proxy.restricted import Plane

FAST = {"TOKENGATE_LIFECYCLE_EXPIRING_REFRESH_SECONDS": "1"}


async def gauge(gw: Gw, token_type: str) -> tuple[float, float, float]:
    """The gauge's 1d, 7d and 30d values for one token type, as this process exports them."""
    plane = Plane(gw.gp, gw.upstream, gw.session, gw.redis_url)
    day, week, month = [await plane.metric("tokengate_tokens_expiring", token_type=token_type,
                                           within=within) for within in ("1d", "7d", "30d")]
    return day, week, month


async def wait_for(gws: list[Gw], token_type: str, expected: tuple[float, float, float],
                   timeout: float = 15.0) -> None:
    """Wait (with a deadline) until every process exports ``expected``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = [await gauge(gw, token_type) for gw in gws]
        if all(values == expected for values in seen):
            return
        assert asyncio.get_running_loop().time() < deadline, (token_type, expected, seen)
        await asyncio.sleep(0.1)


async def test_every_replica_exports_the_counts_of_tokens_expiring_soon(
        start_gw: StartGw) -> None:
    """Two replicas refreshing every second export the same cumulative counts per type;
    a revoked token leaves them; the counts are kept in the store for every replica."""
    first = await start_gw(extra_env=FAST)
    second = await start_gw(extra_env=FAST, master_key=first.gp.env["TOKENGATE_MASTER_KEY"])
    await seed(first)
    await first.member_tokens(True, actor="alice")
    made = {days: await first.create("workspace", f"{days} days", actor="alice",
                                     expires_in_days=days) for days in (1, 5, 20, 90)}
    await first.create("member", "bob's", actor="bob", expires_in_days=3)
    await first.create("workspace", "other's", actor="olga", expires_in_days=2)  # workspace "other"
    await wait_for([first, second], "workspace", (1, 3, 4))
    await wait_for([first, second], "member", (0, 1, 1))
    await first.ok("DELETE", f"/tokens/{made[5]['token']}", actor="alice")
    await wait_for([first, second], "workspace", (1, 2, 3))
    client = redis.asyncio.Redis.from_url(first.redis_url)
    try:
        stored = await client.hgetall("tg:expiring")
        assert (stored[b"workspace:7d"], stored[b"member:30d"]) == (b"2", b"1")
    finally:
        await client.aclose()


async def test_each_listing_row_says_in_how_many_days_it_expires(start_gw: StartGw) -> None:
    """expires_in_days is whole days left; null for a revoked token."""
    gw = await start_gw()
    await seed(gw)
    created = await gw.create("workspace", "soon", actor="alice", expires_in_days=7)
    assert created["expires_in_days"] == 6  # a moment less than 7 days are left
    revoked = await gw.create("workspace", "gone", actor="alice", expires_in_days=30)
    await gw.ok("DELETE", f"/tokens/{revoked['token']}", actor="alice")
    rows = {t["token"]: t for t in await gw.tokens(actor="alice")}
    assert rows[created["token"]]["expires_in_days"] == 6
    assert rows[revoked["token"]]["expires_in_days"] is None
