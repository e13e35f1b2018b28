"""Methods are matched case-sensitively; a method outside the standard set meets every rule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import InProcess, RecordingUpstream, basic
from tests.rules.support import GatewayFactory, MakeGateway, problem, raw_request

INVITES = "/api/default/invites"


@pytest.mark.parametrize("method", ["PURGE", "PROPFIND", "QUERY", "SEARCH", "REPORT"])
async def test_non_standard_method_is_refused_on_a_denied_path(
    make_gateway: MakeGateway, upstream: RecordingUpstream, method: str
) -> None:
    """A method no rule names could be routed anywhere, so it is denied wherever a rule's path matches."""
    g: InProcess = await make_gateway()
    response = await raw_request(g.proxy, method, INVITES,
                                 headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 403 and problem(response)["rule"] == "create-invite"
    assert upstream.seen == []


@pytest.mark.parametrize("method", ["PURGE", "PROPFIND", "QUERY", "SEARCH", "REPORT"])
async def test_non_standard_method_is_forwarded_elsewhere(
    make_gateway: MakeGateway, upstream: RecordingUpstream, method: str
) -> None:
    """Where no rule's path matches, a non-standard method reaches the upstream unchanged."""
    g: InProcess = await make_gateway()
    response = await raw_request(g.proxy, method, "/api/default/reports",
                                 headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 200
    assert [(s.method, s.raw_path) for s in upstream.seen] == [(method, "/api/default/reports")]


@pytest.mark.parametrize("method", [b"post", b"Post", b"FOO"])
async def test_methods_the_http_parser_rejects_are_400(
    make_gateway: MakeGateway, upstream: RecordingUpstream, method: bytes
) -> None:
    """With aiohttp's C parser, methods it does not know (``post``, ``FOO``) are 400 and never forwarded."""
    g: InProcess = await make_gateway()
    for path in (INVITES, "/api/default/reports"):
        response = await raw_request(g.proxy, method, path,
                                     headers={"Authorization": basic(g.token, g.secret)})
        assert response.status == 400
    assert upstream.seen == []


class RawUpstream:
    """An upstream on a bare socket that accepts any method and records request lines."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            writer.close()
            return
        self.lines.append(head.split(b"\r\n", 1)[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    """A RawUpstream on a free loopback port."""
    rec = RawUpstream()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield rec
    server.close()
    await server.wait_closed()


@pytest.mark.slow
async def test_pure_python_parser_unknown_methods(
    gateway_factory: GatewayFactory, redis_url: str, raw_upstream: RawUpstream, tmp_path: Path
) -> None:
    """Under aiohttp's pure-Python parser, which accepts any token, ``post`` and ``FOO`` are denied on a denied path and ``FOO`` is forwarded elsewhere."""
    gp = gateway_factory(store_url=redis_url, upstream=raw_upstream.url,
                         extra_env={"AIOHTTP_NO_EXTENSIONS": "1"})
    status, created = await asyncio.to_thread(
        gp.admin_call, "POST", "/admin/api/tokens", {"type": "workspace", "name": "t"})
    assert status == 201
    auth = {"Authorization": basic(created["token"], created["secret"])}
    for method in (b"post", b"Post", b"FOO", b"Foo"):
        response = await raw_request(gp.proxy, method, INVITES, headers=auth)
        assert response.status == 403, (method, response)
        assert problem(response)["rule"] == "create-invite"
    assert raw_upstream.lines == []
    response = await raw_request(gp.proxy, b"FOO", "/api/default/reports", headers=auth)
    assert response.status == 200 and response.body == b"ok"
    assert raw_upstream.lines == [b"FOO /api/default/reports HTTP/1.1"]
