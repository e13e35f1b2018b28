"""The lean client's response framing, case by case, against a raw-socket upstream.

Every case is sent whole, byte by byte, and split in two inside its head or
body, so the parser sees it across reads. Valid answers are relayed with
their body and (when they allow it) leave the connection for the next
request; invalid ones are a 502 when they are refused before the status line
is relayed, or a cut connection after it — never an answer that looks
complete — and their connection is dropped, never reused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.conftest import InProcess, basic
from tests.proxy.rawupstream import RawUpstream, Received, Reply, until
from tests.rules.support import MakeGateway

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass(frozen=True)
class Case:
    """One upstream answer and what the client must see."""

    raw: bytes
    status: int | None  # None: 502 or a cut body (where the fault is found depends on reads)
    body: bytes = b""
    method: str = "GET"
    reused: bool = True  # may the next request use the same connection?
    close: bool = False  # the upstream closes after sending


CASES = {
    "content-length": Case(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
                           200, b"hello"),
    "chunked with extensions and trailers": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", 200, b"hello world"),
    "chunked, upper-case hex": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
        200, b"0123456789"),
    "close-delimited": Case(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the end", 200,
                            b"until the end", reused=False, close=True),
    "connection: close": Case(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
                              200, b"hi", reused=False, close=True),
    "HTTP/1.0 without keep-alive": Case(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                                        200, b"hi", reused=False, close=True),
    "HEAD with a Content-Length": Case(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
                                       200, method="HEAD"),
    "204 no content": Case(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", 204),
    "304 with a Content-Length": Case(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"x\"\r\n\r\n", 304),
    "103 early hints, then the answer": Case(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew", 201, b"new"),
    "empty body by length": Case(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200),
    # --- refused ---
    "Content-Length and Transfer-Encoding": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n", 502, reused=False),
    "Transfer-Encoding then Content-Length": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n", 502, reused=False),
    "two differing Content-Lengths": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 502,
        reused=False),
    "bad Content-Length": Case(b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello", 502,
                               reused=False),
    "negative Content-Length": Case(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello", 502,
                                    reused=False),
    "a coding other than chunked": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot gzip", 502, reused=False),
    "chunked not last": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        502, reused=False),
    "garbage status line": Case(b"HTTX/1.1 200 OK\r\n\r\n", 502, reused=False),
    "status out of range": Case(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", 502,
                                reused=False),
    "switching protocols unasked": Case(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        502, reused=False),
    "bad chunk size": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        None, reused=False),
    "chunk longer than its size": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
        None, reused=False),
    "body shorter than its length": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", None, reused=False, close=True),
    "chunked body cut short": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", None, reused=False,
        close=True),
}
DELIVERIES = ("whole", "bytewise", "split:20")


@pytest.fixture
async def raw() -> AsyncIterator[RawUpstream]:
    """The raw upstream: ``/case/<name>/<delivery>`` answers that case, anything else OK."""

    def answer(seen: Received) -> Reply:
        if seen.target.startswith("/case/"):
            key, _, delivery = seen.target.removeprefix("/case/").rpartition("/")
            case = CASES[key.replace("_", " ")]
            return Reply(case.raw, delivery, close=case.close)
        return Reply(OK)

    server = await RawUpstream(answer).start()
    yield server
    await server.stop()


async def outcome(s: aiohttp.ClientSession, url: str, auth: str,
                  method: str) -> tuple[int, bytes] | str:
    """(status, body), or "cut" when the body broke off."""
    try:
        async with s.request(method, url, headers={"Authorization": auth}) as r:
            return r.status, await r.read()
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
            aiohttp.ClientOSError):
        return "cut"


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("name", CASES)
async def test_each_framing_case_is_relayed_or_refused(
    make_gateway: MakeGateway, raw: RawUpstream, name: str, delivery: str
) -> None:
    """Valid framings arrive with their body (a kept-alive connection serves the next
    request); invalid ones are 502 or a cut body, never relayed whole, and their
    connection is dropped."""
    case = CASES[name]
    g: InProcess = await make_gateway({"upstream": {"url": raw.url, "timeout_seconds": 5}})
    auth = basic(g.token, g.secret)
    async with aiohttp.ClientSession() as s:
        got = await outcome(s, f"{g.proxy}/case/{name.replace(' ', '_')}/{delivery}", auth,
                            case.method)
        after = await outcome(s, f"{g.proxy}/next", auth, "GET")
    if case.status is None:
        assert got == "cut" or got == (502, got[1]), got  # type: ignore[index]
    elif case.status == 502:
        assert got != "cut" and got[0] == 502, got
    else:
        assert got == (case.status, case.body), got
    assert after == (200, b"ok")
    first, second = raw.received[0].conn, raw.received[-1].conn
    assert len(raw.received) == 2  # nothing was sent twice
    assert (first == second) is case.reused
    if not case.reused and not case.close:
        assert await until(lambda: first in raw.closed_by_gateway)  # dropped, not left open


async def test_an_oversized_answer_head_is_refused(make_gateway: MakeGateway) -> None:
    """An answer whose status line and headers run past 64 KiB is a 502, its connection
    dropped: the gateway does not hold an unbounded head."""
    big = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 0\r\n\r\n"
    raw = await RawUpstream(lambda seen: Reply(big if seen.target == "/big" else OK)).start()
    try:
        g: InProcess = await make_gateway({"upstream": {"url": raw.url}})
        auth = basic(g.token, g.secret)
        async with aiohttp.ClientSession() as s:
            got = await outcome(s, f"{g.proxy}/big", auth, "GET")
            assert got != "cut" and got[0] == 502, got
            assert await outcome(s, f"{g.proxy}/next", auth, "GET") == (200, b"ok")
        assert raw.received[0].conn != raw.received[1].conn
    finally:
        await raw.stop()
