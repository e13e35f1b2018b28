"""The data plane end to end: real gateway, real Redis, real upstream, real TCP."""

from __future__ import annotations

import base64
import socket

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.conftest import BOTH_CLIENTS, InProcess, RecordingUpstream, basic, free_port

pytestmark = BOTH_CLIENTS  # every test here forwards, or proves nothing was forwarded


async def get(url: str, **kw: object) -> tuple[int, CIMultiDict[str], bytes]:
    """One request with a fresh client; status, headers (case-insensitive), body."""
    async with aiohttp.ClientSession() as s, \
            s.request(kw.pop("method", "GET"), url, **kw) as r:  # type: ignore[arg-type]
        return r.status, CIMultiDict(r.headers), await r.read()


async def test_authenticated_request_reaches_upstream_with_identity(
    make_gateway, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """A valid token's request arrives upstream with identity headers and without Authorization."""
    g: InProcess = await make_gateway()
    status, headers, _ = await get(
        g.proxy + "/api/default/reports?x=1&y=%20z",
        method="POST", data=b"hello",
        headers={"Authorization": basic(g.token, g.secret), "X-Custom": "kept",
                 "X-Request-Id": "client-id-1"},
    )
    assert status == 200
    seen = upstream.seen[-1]
    h = {k.lower(): v for k, v in seen.headers}
    assert (seen.method, seen.raw_path, seen.body_bytes) == ("POST", "/api/default/reports?x=1&y=%20z", 5)
    assert "authorization" not in h
    assert h["x-tokengate-user"] == "workspace:default"
    assert h["x-tokengate-role"] == "admin"
    assert h["x-tokengate-token-type"] == "workspace"
    assert h["x-tokengate-token"] == g.token
    assert h["x-tokengate-workspace"] == "default"
    assert h["x-custom"] == "kept"
    assert h["x-forwarded-for"] == "127.0.0.1" and h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"].startswith("127.0.0.1:")
    assert h["x-request-id"] == "client-id-1" == headers["X-Request-Id"]
    assert headers["X-RateLimit-Limit"] == "40" and headers["X-RateLimit-Remaining"] == "39"


async def test_spoofed_identity_headers_never_reach_upstream(
    make_gateway, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """Client-sent identity headers are stripped whatever their case or underscore spelling."""
    g: InProcess = await make_gateway()
    spoofs = [("X-Tokengate-User", "mallory"), ("x-tokengate-role", "owner"),
              ("X_TOKENGATE_USER", "mallory"), ("X-Tokengate_Workspace", "evil"),
              ("x-TOKENGATE-token-type", "trusted"), ("X-Tokengate-Assertion", "forged"),
              ("X-Forwarded-For", "6.6.6.6")]
    status, _, _ = await get(g.proxy + "/x", headers=[("Authorization", basic(g.token, g.secret)),
                                                      *spoofs])
    assert status == 200
    values = [v for _, v in upstream.seen[-1].headers]
    for _, forged in spoofs:
        assert forged not in values
    names = [k.lower().replace("_", "-") for k, _ in upstream.seen[-1].headers]
    assert names.count("x-tokengate-user") == 1


async def test_hop_by_hop_headers_removed_both_ways(
    make_gateway, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """Connection-listed and hop-by-hop headers are dropped on the request and the response."""
    g: InProcess = await make_gateway()
    status, headers, body = await get(
        g.proxy + "/download/10",
        headers={"Authorization": basic(g.token, g.secret), "Connection": "keep-alive, X-Drop-Me",
                 "X-Drop-Me": "1", "TE": "trailers", "Proxy-Authorization": "Basic abc"},
    )
    assert status == 200 and body == b"x" * 10
    sent = {k.lower() for k, _ in upstream.seen[-1].headers}
    assert not sent & {"x-drop-me", "te", "proxy-authorization"}
    assert "X-Hop" not in headers and headers["X-Upstream"] == "yes"
    assert headers.get("Keep-Alive") is None


async def test_request_id_generated_when_missing_or_malformed(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """A missing or malformed X-Request-Id is replaced by a generated one, echoed back."""
    g: InProcess = await make_gateway()
    _, h1, _ = await get(g.proxy + "/", headers={"Authorization": basic(g.token, g.secret)})
    _, h2, _ = await get(g.proxy + "/", headers={"Authorization": basic(g.token, g.secret),
                                                 "X-Request-Id": "bad id with spaces"})
    assert len(h1["X-Request-Id"]) == 32 and h2["X-Request-Id"] != "bad id with spaces"


async def test_wrong_secret_and_unknown_token_look_the_same(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """A wrong secret and an unknown token give identical 401 bodies (no existence oracle)."""
    g: InProcess = await make_gateway()
    from gateway.policy.credentials import new_secret, new_token
    from gateway.policy.model import TokenType

    s1, h1, b1 = await get(g.proxy + "/", headers={"Authorization": basic(g.token, new_secret())})
    s2, _, b2 = await get(g.proxy + "/", headers={
        "Authorization": basic(new_token(TokenType.WORKSPACE), new_secret())})
    assert s1 == s2 == 401 and b1 == b2
    assert h1["WWW-Authenticate"] == 'Basic realm="tokengate"'
    assert h1["Content-Type"].startswith("application/problem+json")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


HOSTILE = {
    "not base64": "Basic %%%%",
    "no colon": "Basic " + _b64(b"tgw_abcdefghijklmnop"),
    "empty parts": "Basic " + _b64(b":"),
    "non-utf8": "Basic " + _b64(b"\xc3\x28:\xa0\xa1"),
    "16 KB": "Basic " + "Q" * 16000,
    "wrong checksum": "Basic " + _b64(b"tgw_0000000000000000AAAAAA:tgs_" + b"0" * 28 + b"AAAAAA"),
    "wrong scheme": "Negotiate abc",
    "bearer garbage": "Bearer " + "x" * 40,
}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_authorization_is_401_and_changes_nothing(
    make_gateway, redis_url: str, upstream: RecordingUpstream, value: str  # type: ignore[no-untyped-def]
) -> None:
    """Hostile Authorization values get 401 (never 5xx), reach no upstream, create no record."""
    import redis.asyncio as aioredis

    g: InProcess = await make_gateway()
    client = aioredis.Redis.from_url(redis_url)
    before = {k for k in await client.keys("*") if b":rl:" not in k}
    status, headers, _ = await get(g.proxy + "/", headers={"Authorization": value})
    after = {k for k in await client.keys("*") if b":rl:" not in k}
    await client.aclose()
    assert status == 401 and b"problem" in headers["Content-Type"].encode()
    assert after == before
    assert upstream.seen == []


async def test_missing_authorization_is_401(make_gateway, upstream: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """No credentials: 401 with the Basic challenge; the upstream sees nothing."""
    g: InProcess = await make_gateway()
    status, headers, _ = await get(g.proxy + "/anything")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="tokengate"'
    assert upstream.seen == []


async def test_upstream_unreachable_is_502(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """An upstream refusing connections gives 502 problem+json."""
    port = free_port()
    g: InProcess = await make_gateway({"upstream": {"url": f"http://127.0.0.1:{port}"}})
    status, headers, _ = await get(g.proxy + "/", headers={"Authorization": basic(g.token, g.secret)})
    assert status == 502 and headers["Content-Type"].startswith("application/problem+json")


async def test_upstream_timeout_is_504(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """An upstream slower than the timeout gives 504 problem+json."""
    g: InProcess = await make_gateway({"upstream": {"timeout_seconds": 0.2}})
    status, headers, _ = await get(g.proxy + "/slow/1", headers={"Authorization": basic(g.token, g.secret)})
    assert status == 504 and headers["Content-Type"].startswith("application/problem+json")


async def test_store_down_fails_closed_with_503(make_gateway, redis_server) -> None:  # type: ignore[no-untyped-def]
    """With the store unreachable, a request is refused with 503 and Retry-After, not passed."""
    g: InProcess = await make_gateway()
    # Point a second gateway (sharing nothing cached) at a dead Redis port.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    from aiohttp.test_utils import TestServer

    from gateway.config import load_settings
    from gateway.keys import Keys
    from gateway.proxy.app import build_proxy_app
    from gateway.runtime import Gateway
    from gateway.store import open_store

    settings = load_settings(environ={}, overrides={
        "upstream": {"url": g.gw.settings.upstream.url},  # type: ignore[attr-defined]
        "store": {"url": f"redis://127.0.0.1:{port}/0", "timeout_seconds": 0.5},
        "log": {"access": False}})
    gw = Gateway(settings, Keys.from_master(b"k" * 32), open_store(settings.store.url, timeout=0.5))
    await gw.forwarder.start()
    server = TestServer(build_proxy_app(gw), host="127.0.0.1")
    await server.start_server()
    try:
        status, headers, _ = await get(f"http://127.0.0.1:{server.port}/",
                                       headers={"Authorization": basic(g.token, g.secret)})
    finally:
        await server.close()
        await gw.forwarder.close()
        await gw.store.close()
    assert status == 503 and headers["Retry-After"] == "1"


async def test_readyz_reports_store(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """/healthz is 200 and /readyz is 200 while the store answers."""
    g: InProcess = await make_gateway()
    assert (await get(g.admin + "/healthz"))[0] == 200
    assert (await get(g.admin + "/readyz"))[0] == 200


async def test_admin_api_needs_the_admin_key(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """Without the admin key (or with a wrong one) the admin API answers 401."""
    g: InProcess = await make_gateway()
    assert (await get(g.admin + "/admin/api/users"))[0] == 401
    assert (await get(g.admin + "/admin/api/users", headers={"Authorization": "Bearer wrong"}))[0] == 401
    from tests.conftest import ADMIN_KEY

    assert (await get(g.admin + "/admin/api/users",
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}))[0] == 200


async def test_metrics_only_on_admin_listener(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """/metrics is served by the admin listener; on the proxy it is just an authenticated path."""
    g: InProcess = await make_gateway()
    status, _, body = await get(g.admin + "/metrics")
    assert status == 200 and b"tokengate_requests_total" in body
    assert (await get(g.proxy + "/metrics"))[0] == 401


async def test_a_501_token_endpoint_counts_as_bad_request_not_upstream_error(
    make_gateway,  # type: ignore[no-untyped-def]
) -> None:
    """An unimplemented ThoughtSpot endpoint is the request's matter: outcome bad_request."""
    g = await make_gateway()
    registry = g.gw.metrics.registry  # type: ignore[attr-defined]

    def count(outcome: str) -> float:
        return registry.get_sample_value("tokengate_requests_total", {
            "outcome": outcome, "token_type": "none", "route_class": "none"}) or 0.0

    before = count("bad_request"), count("upstream_error")
    async with aiohttp.ClientSession() as s, s.post(
            g.proxy + "/api/rest/2.0/auth/token/custom", json={}) as r:
        assert r.status == 501
    assert (count("bad_request"), count("upstream_error")) == (before[0] + 1, before[1])
