"""Behind a trusted load balancer, failed-auth limits follow the real client."""

from __future__ import annotations

import aiohttp

from gateway.policy.credentials import new_secret
from tests.conftest import InProcess, RecordingUpstream, basic


async def call(url: str, auth: str, xff: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(
            url, headers={"Authorization": auth, "X-Forwarded-For": xff}) as r:
        return r.status


async def test_failures_are_counted_per_forwarded_client(
    make_gateway, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """One client behind the proxy exhausting its failures does not lock out another."""
    g: InProcess = await make_gateway({
        "proxy": {"trusted_proxies": ["127.0.0.0/8"]},
        "rate_limit": {"auth_failures": {"limit": 3, "window_seconds": 30}},
    })
    bad, good = basic(g.token, new_secret()), basic(g.token, g.secret)
    statuses = [await call(g.proxy + "/x", bad, "198.51.100.7") for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert await call(g.proxy + "/x", good, "198.51.100.7") == 429  # that client is throttled
    assert await call(g.proxy + "/x", good, "198.51.100.8") == 200  # another is not
    assert await call(g.proxy + "/x", good, "6.6.6.6, 198.51.100.7") == 429  # no escaping left
    forwarded = {k.lower(): v for k, v in upstream.seen[-1].headers}["x-forwarded-for"]
    assert forwarded == "198.51.100.8, 127.0.0.1"


async def test_without_trusted_proxies_forwarded_for_is_ignored(
    make_gateway, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """By default a client's X-Forwarded-For neither names it nor reaches the upstream."""
    g: InProcess = await make_gateway()
    assert await call(g.proxy + "/x", basic(g.token, g.secret), "6.6.6.6") == 200
    forwarded = {k.lower(): v for k, v in upstream.seen[-1].headers}["x-forwarded-for"]
    assert forwarded == "127.0.0.1"
