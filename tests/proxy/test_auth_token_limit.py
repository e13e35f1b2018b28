"""A token's own rate limit through real gateway processes and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from tests.conftest import GatewayProcess, RecordingUpstream
from tests.proxy.restricted import Plane, start_plane

StartPlane = Callable[..., Awaitable[Plane]]


@pytest.fixture
async def start(gateway_factory: Callable[..., GatewayProcess], redis_url: str,
                upstream: RecordingUpstream) -> AsyncIterator[StartPlane]:
    """Start gateways on one Redis; the first seeds alice (admin), bob (member), member tokens."""
    async with aiohttp.ClientSession() as session:
        seeded: list[Plane] = []

        async def make(**env: str) -> Plane:
            p = start_plane(gateway_factory, redis_url, upstream, session,
                            replica_of=seeded[0] if seeded else None, **env)
            if not seeded:
                await p.add_user("alice", "admin")
                await p.add_user("bob", "member")
                await p.member_tokens(True)
            seeded.append(p)
            return p

        yield make


def window(reply_headers: dict[str, str]) -> tuple[str, str, str]:
    """(X-RateLimit-Limit, X-RateLimit-Remaining, RateLimit-Policy)."""
    return (reply_headers["X-RateLimit-Limit"], reply_headers["X-RateLimit-Remaining"],
            reply_headers["RateLimit-Policy"])


async def test_the_own_limit_refuses_with_429_and_publishes_its_window(start: StartPlane) -> None:
    """3 per minute under the user's 40 per 10 s: the headers show the token's window
    (closer to exhaustion), the fourth request is 429 with Retry-After, and another token of
    the same workspace keeps the user window's quota."""
    plane = await start()
    created = await plane.create("workspace", "slow", actor="alice",
                                 rate_limit={"limit": 3, "window_seconds": 60})
    assert created["rate_limit"] == {"limit": 3, "window_seconds": 60}
    replies = [await plane.send(created) for _ in range(4)]
    assert [r.status for r in replies] == [200, 200, 200, 429]
    assert [window(r.headers)[:2] for r in replies] == [("3", "2"), ("3", "1"), ("3", "0"),
                                                        ("3", "0")]
    assert window(replies[0].headers)[2] == '"token";q=3;w=60'
    refused = replies[3]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert "this token's rate limit of 3 requests per 60 s" in refused.detail
    other = await plane.create("workspace", "fast", actor="alice")
    assert window((await plane.send(other)).headers)[:2] == ("40", "39")


async def test_the_user_window_is_published_when_it_is_closer(start: StartPlane) -> None:
    """With the user's window at 2 per minute and the token's own at 10, the user's window
    shows and refuses; the refused request uses no quota of the token's own window."""
    plane = await start(TOKENGATE_RATE_LIMIT_LIMIT="2", TOKENGATE_RATE_LIMIT_WINDOW_SECONDS="60")
    created = await plane.create("workspace", "roomy", actor="alice",
                                 rate_limit={"limit": 10, "window_seconds": 60})
    replies = [await plane.send(created) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 429]
    assert [window(r.headers) for r in replies[:2]] == [
        ("2", "1", '"default";q=2;w=60'), ("2", "0", '"default";q=2;w=60')]
    assert "this token's" not in replies[2].detail


async def test_an_admin_sets_a_limit_on_a_members_token_and_every_replica_applies_it(
        start: StartPlane) -> None:
    """PUT /tokens/{token}/rate-limit (admins only) takes effect on a replica that had the
    credential cached; null takes it away again."""
    first = await start()
    second = await start()
    created = await first.create("member", "bob's", actor="bob")
    assert (await second.send(created)).status == 200  # cached on the second replica
    refused = await first.call("PUT", f"/tokens/{created['token']}/rate-limit",
                               {"rate_limit": {"limit": 1, "window_seconds": 60}}, actor="bob")
    assert refused.status == 403
    limited = await first.ok("PUT", f"/tokens/{created['token']}/rate-limit",
                             {"rate_limit": {"limit": 1, "window_seconds": 60}}, actor="alice")
    assert limited["rate_limit"] == {"limit": 1, "window_seconds": 60}

    async def limit_seen() -> bool:
        reply = await second.send(created)
        return reply.headers.get("X-RateLimit-Limit") == "1"

    await until(limit_seen)
    assert (await second.send(created)).status == 429
    bad = await first.call("PUT", f"/tokens/{created['token']}/rate-limit",
                           {"rate_limit": {"limit": 0, "window_seconds": 60}}, actor="alice")
    assert (bad.status, bad.body["field"]) == (422, "rate_limit.limit")
    await first.ok("PUT", f"/tokens/{created['token']}/rate-limit", {"rate_limit": None},
                   actor="alice")

    async def limit_gone() -> bool:
        return (await second.send(created)).status == 200

    await until(limit_gone)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait for ``check`` to hold (an invalidation crossing replicas), with a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.02)
