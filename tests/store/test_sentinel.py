"""redis+sentinel:// URLs, and a gateway process that finds its Redis through Sentinel."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.config import ConfigError, load_settings
from gateway.store.sentinel import SentinelTarget, parse_sentinel_url
from tests.conftest import RecordingUpstream, SentinelServer, basic


@pytest.mark.parametrize(("url", "target"), [
    ("redis+sentinel://h1:26380,h2/svc", SentinelTarget((("h1", 26380), ("h2", 26379)), "svc")),
    ("redis+sentinel://:p%40ss@h:1/svc/3",
     SentinelTarget((("h", 1),), "svc", db=3, password="p@ss")),
    ("redis+sentinel://u:pw@[::1]:5/svc", SentinelTarget((("::1", 5),), "svc", 0, "u", "pw")),
])
def test_sentinel_urls_parse(url: str, target: SentinelTarget) -> None:
    """Sentinel hosts (default port 26379), service, database and master credentials parse."""
    assert parse_sentinel_url(url) == target


@pytest.mark.parametrize("url", [
    "redis+sentinel://h:1", "redis+sentinel://h:1/", "redis+sentinel://h:99999/svc",
    "redis+sentinel://h:1/svc/x", "redis+sentinel:///svc",
])
def test_bad_sentinel_urls_stop_start_up(url: str) -> None:
    """A sentinel URL without a service, with a bad port or database is a config error."""
    with pytest.raises(ConfigError, match="store.url"):
        load_settings(environ={"TOKENGATE_STORE_URL": url})


async def test_gateway_through_sentinel(
    gateway_factory, sentinel_server: SentinelServer, redis_url: str,  # type: ignore[no-untyped-def]
    upstream: RecordingUpstream,
) -> None:
    """`tokengate serve --store redis+sentinel://...` authenticates, limits and forwards."""
    gp = gateway_factory(store_url=sentinel_server.url(dead_first=True), upstream=upstream.url)
    assert gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})[0] == 201
    _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "s"})
    async with aiohttp.ClientSession() as s:
        async with s.get(gp.proxy + "/x", headers={
                "Authorization": basic(tok["token"], tok["secret"])}) as r:
            assert r.status == 200 and r.headers["X-RateLimit-Remaining"] == "39"
        async with s.get(gp.admin + "/readyz") as r:
            assert r.status == 200
