"""Sliding-window rate limits end to end: in-process gateways on real Redis and real TCP."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from multidict import CIMultiDict

from tests.conftest import InProcess, RecordingUpstream, basic
from tests.rules.support import MakeGateway, another_member_token, member_token

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "RateLimit-Policy", "RateLimit")


async def call(session: aiohttp.ClientSession, url: str, auth: str | None = None,
               method: str = "GET") -> tuple[int, CIMultiDict[str], Any]:
    """One request on ``session``: status, headers, body (JSON when it is JSON)."""
    headers = {"Authorization": auth} if auth else {}
    async with session.request(method, url, headers=headers) as r:
        body = await r.json(content_type=None) if r.content_type.endswith("json") else await r.read()
        return r.status, CIMultiDict(r.headers), body


def policy_of(headers: CIMultiDict[str]) -> str:
    """The quoted policy name of the ``RateLimit-Policy`` field."""
    match = re.fullmatch(r'"([^"]*)";q=\d+;w=\d+', headers["RateLimit-Policy"])
    assert match, headers["RateLimit-Policy"]
    return match.group(1)


async def test_burst_of_45_admits_exactly_40_and_counts_down(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """45 back-to-back requests: 40 pass counting 39..0, 5 get 429 with Retry-After, and waiting that long suffices."""
    g: InProcess = await make_gateway({"rate_limit": {"limit": 40, "window_seconds": 1}})
    auth = basic(g.token, g.secret)
    async with aiohttp.ClientSession() as s:
        results = [await call(s, g.proxy + "/api/default/reports", auth) for _ in range(45)]
        statuses = [status for status, _, _ in results]
        assert statuses == [200] * 40 + [429] * 5
        assert [h["X-RateLimit-Remaining"] for _, h, _ in results[:40]] == [str(n) for n in range(39, -1, -1)]
        for status, headers, body in results:
            assert all(name in headers for name in RATE_HEADERS), headers
            assert headers["X-RateLimit-Limit"] == "40"
            assert headers["RateLimit-Policy"] == '"default";q=40;w=1'
            assert re.fullmatch(r'"default";r=\d+;t=\d+', headers["RateLimit"])
        for status, headers, body in results[40:]:
            assert headers["Content-Type"].startswith("application/problem+json")
            assert body["status"] == 429 and body["title"] == "Too many requests"
            assert headers["X-RateLimit-Remaining"] == "0"
            assert re.fullmatch(r"[1-9]\d*", headers["Retry-After"])
        assert len(upstream.seen) == 40
        await asyncio.sleep(int(results[-1][1]["Retry-After"]))
        status, headers, _ = await call(s, g.proxy + "/api/default/reports", auth)
        assert status == 200 and headers["X-RateLimit-Remaining"] == "39"


async def test_hammering_past_the_limit_is_admitted_when_the_window_has_room(
    make_gateway: MakeGateway, redis_url: str
) -> None:
    """Rejected requests are not recorded, so a client that never stops is let in once the window moves on."""
    g: InProcess = await make_gateway({"rate_limit": {"limit": 3, "window_seconds": 1}})
    auth = basic(g.token, g.secret)
    client = aioredis.Redis.from_url(redis_url)
    key = f"tg:rl:default:{{t:{g.token}}}"
    try:
        async with aiohttp.ClientSession() as s:
            assert [(await call(s, g.proxy + "/", auth))[0] for _ in range(3)] == [200] * 3
            rejected = 0
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3  # a safety stop only; the window is 1 s
            while loop.time() < deadline:
                status, _, _ = await call(s, g.proxy + "/", auth)
                if status == 200:
                    break
                assert status == 429
                rejected += 1
                assert await client.zcard(key) == 3  # rejections leave no trace
                await asyncio.sleep(0.01)
            else:
                pytest.fail("never admitted again while hammering")
        assert rejected > 10
    finally:
        await client.aclose()


async def test_wrong_secret_cannot_use_up_the_victims_quota(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """Requests with the victim's token but a wrong secret never touch the victim's window."""
    from gateway.policy.credentials import new_secret

    g: InProcess = await make_gateway({"rate_limit": {"limit": 5, "window_seconds": 10,
                                                      "auth_failures": {"limit": 50}}})
    async with aiohttp.ClientSession() as s:
        for _ in range(20):
            status, headers, _ = await call(s, g.proxy + "/", basic(g.token, new_secret()))
            assert status == 401 and "X-RateLimit-Remaining" not in headers
        status, headers, _ = await call(s, g.proxy + "/", basic(g.token, g.secret))
    assert status == 200 and headers["X-RateLimit-Remaining"] == "4"


async def test_failed_authentication_is_limited_per_client_address(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """After the failure budget, an address gets 429 even with a correct secret until the window passes; other addresses are unaffected."""
    from gateway.policy.credentials import new_secret

    g: InProcess = await make_gateway({"rate_limit": {"auth_failures": {"limit": 5, "window_seconds": 1}}})
    right, wrong = basic(g.token, g.secret), basic(g.token, new_secret())
    attacker = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
    bystander = aiohttp.ClientSession()
    try:
        statuses = [(await call(attacker, g.proxy + "/", wrong))[0] for _ in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        status, headers, body = await call(attacker, g.proxy + "/", right)
        assert status == 429  # no oracle: the right secret looks like the wrong ones
        assert body["type"].endswith("/rate-limited")
        assert headers["Retry-After"] == "1"
        status, _, _ = await call(attacker, g.proxy + "/", None)
        assert status == 429
        # Another address is judged on its own.
        assert (await call(bystander, g.proxy + "/", wrong))[0] == 401
        assert (await call(bystander, g.proxy + "/", right))[0] == 200
        seen = len(upstream.seen)
        await asyncio.sleep(int(headers["Retry-After"]))
        assert (await call(attacker, g.proxy + "/", right))[0] == 200
        assert len(upstream.seen) == seen + 1
    finally:
        await attacker.close()
        await bystander.close()


CLASSES = {
    "limit": 5, "window_seconds": 1,
    "classes": [{"name": "reports", "methods": ["GET"], "path": "/api/{workspace}/reports/**",
                 "limit": 2, "window_seconds": 2}],
}


async def test_named_class_has_its_own_limit_window_and_headers(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """A request in a named class counts against that class only and its headers name the class."""
    g: InProcess = await make_gateway({"rate_limit": CLASSES})
    auth = basic(g.token, g.secret)
    reports = g.proxy + "/api/default/Reports/r1/"
    async with aiohttp.ClientSession() as s:
        first = await call(s, reports, auth)
        head = await call(s, reports, auth, method="HEAD")
        third = await call(s, reports, auth)
        assert [first[0], head[0], third[0]] == [200, 200, 429]
        for _, headers, _ in (first, head, third):
            assert policy_of(headers) == "reports"
            assert headers["X-RateLimit-Limit"] == "2"
            assert headers["RateLimit-Policy"] == '"reports";q=2;w=2'
        assert [first[1]["X-RateLimit-Remaining"], head[1]["X-RateLimit-Remaining"]] == ["1", "0"]
        assert third[1]["Retry-After"] in ("1", "2")
        # Other requests fall in the default class, with a quota of their own.
        for method, url in (("POST", reports), ("GET", g.proxy + "/api/default/other")):
            status, headers, _ = await call(s, url, auth, method=method)
            assert status == 200 and policy_of(headers) == "default"
            assert headers["X-RateLimit-Limit"] == "5"
        assert headers["X-RateLimit-Remaining"] == "3"


async def test_key_user_pools_all_of_a_users_tokens(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """With ``rate_limit.key = "user"`` two tokens of one user share one quota."""
    g: InProcess = await make_gateway({"rate_limit": {"limit": 3, "window_seconds": 10, "key": "user"}})
    a = basic(*await member_token(g, "mia"))
    b = basic(*await another_member_token(g, "mia"))
    other = basic(*await member_token(g, "max"))
    async with aiohttp.ClientSession() as s:
        remaining = [(await call(s, g.proxy + "/", auth))[1]["X-RateLimit-Remaining"]
                     for auth in (a, b, a)]
        assert remaining == ["2", "1", "0"]
        assert (await call(s, g.proxy + "/", b))[0] == 429
        status, headers, _ = await call(s, g.proxy + "/", other)
        assert status == 200 and headers["X-RateLimit-Remaining"] == "2"


async def test_default_key_gives_each_token_its_own_quota(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """By default the key is the token (the Basic username): a user's two tokens are limited apart."""
    g: InProcess = await make_gateway({"rate_limit": {"limit": 3, "window_seconds": 10}})
    a = basic(*await member_token(g, "mia"))
    b = basic(*await another_member_token(g, "mia"))
    async with aiohttp.ClientSession() as s:
        remaining = [(await call(s, g.proxy + "/", auth))[1]["X-RateLimit-Remaining"]
                     for auth in (a, b, a)]
    assert remaining == ["2", "2", "1"]


async def test_denied_requests_use_up_no_quota(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """Requests refused by a deny rule or the workspace scope leave the window untouched."""
    g: InProcess = await make_gateway({"rate_limit": {"limit": 2, "window_seconds": 10}})
    auth = basic(g.token, g.secret)
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            assert (await call(s, g.proxy + "/api/default/invites", auth, method="POST"))[0] == 403
            assert (await call(s, g.proxy + "/api/other/reports", auth))[0] == 403
        status, headers, _ = await call(s, g.proxy + "/api/default/reports", auth)
    assert status == 200 and headers["X-RateLimit-Remaining"] == "1"


async def test_idle_keys_expire_and_memory_is_bounded_by_the_limit(
    make_gateway: MakeGateway, redis_url: str
) -> None:
    """A window key holds at most ``limit`` entries, carries a TTL of one window, and is gone once idle."""
    from gateway.policy.credentials import new_secret

    g: InProcess = await make_gateway({"rate_limit": {"limit": 4, "window_seconds": 1,
                                                      "auth_failures": {"limit": 3, "window_seconds": 1}}})
    client = aioredis.Redis.from_url(redis_url)
    key = f"tg:rl:default:{{t:{g.token}}}"
    failures = "tg:rl:{authfail:127.0.0.1}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(12):
                await call(s, g.proxy + "/", basic(g.token, g.secret))
            assert await client.zcard(key) == 4
            assert 0 < await client.pttl(key) <= 1000
            for _ in range(6):
                await call(s, g.proxy + "/", basic(g.token, new_secret()))
        assert await client.zcard(failures) == 3
        assert 0 < await client.pttl(failures) <= 1000
        await asyncio.sleep(1.1)
        assert await client.exists(key, failures) == 0
    finally:
        await client.aclose()


async def test_blocked_address_gets_no_oracle_from_another_replica(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """An address that used up its failure budget on one replica is throttled on every replica, right secret or not."""
    from gateway.policy.credentials import new_secret

    settings = {"rate_limit": {"auth_failures": {"limit": 3, "window_seconds": 5}}}
    first, second = await make_gateway(settings), await make_gateway(settings)
    async with aiohttp.ClientSession() as s:
        statuses = [(await call(s, first.proxy + "/", basic(first.token, new_secret())))[0]
                    for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        status, _, _ = await call(s, second.proxy + "/", basic(first.token, first.secret))
    assert status == 429
