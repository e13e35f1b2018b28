"""With the store unreachable the data plane fails closed: 503 with Retry-After, never a pass-through."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import InProcess, RecordingUpstream, RedisServer, basic, free_port
from tests.rules.support import MakeGateway


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone, which the test may stop."""
    server = RedisServer()
    yield server
    server.stop()


async def test_store_stopping_mid_run_fails_closed(
    make_gateway: MakeGateway, upstream: RecordingUpstream, own_redis: RedisServer
) -> None:
    """A token whose credential is cached still gets 503 once Redis is gone: the limit cannot be checked."""
    from gateway.policy.credentials import new_secret

    g: InProcess = await make_gateway({"store": {"timeout_seconds": 0.5}}, store_url=own_redis.url)
    auth = {"Authorization": basic(g.token, g.secret)}
    async with aiohttp.ClientSession() as s:
        async with s.get(g.proxy + "/api/default/reports", headers=auth) as r:
            assert r.status == 200  # the credential is now cached in-process
        async with s.get(g.admin + "/readyz") as r:
            assert r.status == 200
        own_redis.stop()
        for headers in (auth, {"Authorization": basic(g.token, new_secret())}):
            async with s.get(g.proxy + "/api/default/reports", headers=headers) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
                assert r.headers["Content-Type"].startswith("application/problem+json")
                assert (await r.json(content_type=None))["status"] == 503
        async with s.get(g.admin + "/readyz") as r:
            assert r.status == 503
    assert len(upstream.seen) == 1


async def test_dead_store_port_is_503_and_not_ready(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """A gateway pointed at a port nobody listens on answers 503 with Retry-After and /readyz 503."""
    g: InProcess = await make_gateway()  # only for a valid token and a live upstream
    from aiohttp.test_utils import TestServer

    from gateway.admin.app import build_admin_app
    from gateway.config import load_settings
    from gateway.keys import Keys
    from gateway.proxy.app import build_proxy_app
    from gateway.runtime import Gateway
    from gateway.store import open_store

    settings = load_settings(environ={}, overrides={
        "upstream": {"url": upstream.url}, "log": {"access": False},
        "store": {"url": f"redis://127.0.0.1:{free_port()}/0", "timeout_seconds": 0.5}})
    gw = Gateway(settings, Keys.from_master(b"k" * 32), open_store(settings.store.url, timeout=0.5))
    await gw.forwarder.start()
    proxy = TestServer(build_proxy_app(gw), host="127.0.0.1")
    admin = TestServer(build_admin_app(gw), host="127.0.0.1")
    await proxy.start_server()
    await admin.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            for path in ("/", "/api/default/invites"):
                async with s.post(f"http://127.0.0.1:{proxy.port}{path}",
                                  headers={"Authorization": basic(g.token, g.secret)}) as r:
                    assert r.status == 503 and r.headers["Retry-After"] == "1"
            async with s.get(f"http://127.0.0.1:{admin.port}/readyz") as r:
                assert r.status == 503
    finally:
        await proxy.close()
        await admin.close()
        await gw.forwarder.close()
        await gw.store.close()
    assert upstream.seen == []
