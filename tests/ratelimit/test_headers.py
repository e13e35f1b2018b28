"""Rate-limit headers on responses the gateway makes after admitting a request, and with an upstream that sends its own."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import InProcess, basic, free_port
from tests.rules.support import MakeGateway

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "RateLimit-Policy", "RateLimit")


async def test_upstream_failures_still_publish_the_quota(make_gateway: MakeGateway) -> None:
    """An admitted request used quota, so a 502 (or 504) from the gateway carries the rate-limit headers too."""
    g: InProcess = await make_gateway({"upstream": {"url": f"http://127.0.0.1:{free_port()}"}})
    async with aiohttp.ClientSession() as s:
        for expected in ("39", "38"):
            async with s.get(g.proxy + "/", headers={"Authorization": basic(g.token, g.secret)}) as r:
                assert r.status == 502
                assert all(name in r.headers for name in RATE_HEADERS), r.headers
                assert r.headers["X-RateLimit-Remaining"] == expected
                assert "Retry-After" not in r.headers


async def test_upstream_timeout_publishes_the_quota(make_gateway: MakeGateway) -> None:
    """A 504 after admission carries the rate-limit headers."""
    g: InProcess = await make_gateway({"upstream": {"timeout_seconds": 0.2}})
    async with aiohttp.ClientSession() as s, s.get(
            g.proxy + "/slow/1", headers={"Authorization": basic(g.token, g.secret)}) as r:
        assert r.status == 504 and r.headers["X-RateLimit-Remaining"] == "39"


async def test_gateway_headers_replace_the_upstreams(make_gateway: MakeGateway, aiohttp_server: Any) -> None:
    """When the fronted API publishes its own rate-limit headers, the client sees the gateway's, once each."""
    async def publishes_its_own(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={
            "X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999",
            "RateLimit-Policy": '"api";q=1000;w=60', "RateLimit": '"api";r=999;t=60'})

    app = web.Application()
    app.router.add_get("/{tail:.*}", publishes_its_own)
    server = await aiohttp_server(app)
    g: InProcess = await make_gateway({"upstream": {"url": f"http://127.0.0.1:{server.port}"}})
    async with aiohttp.ClientSession() as s, s.get(
            g.proxy + "/", headers={"Authorization": basic(g.token, g.secret)}) as r:
        assert r.status == 200
        assert [r.headers.getall(name) for name in RATE_HEADERS] == [
            ["40"], ["39"], ['"default";q=40;w=10'], ['"default";r=39;t=10']]
