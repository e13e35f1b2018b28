"""Stream a request to the upstream and its response back, without buffering.

Bodies flow chunk by chunk in both directions through one pooled client
session, so a 200 MB upload or download costs the gateway a few buffers,
not 200 MB.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.policy.errors import BadGateway, ExpectationFailed, GatewayTimeout, RequestTimeout
from gateway.policy.headers import (
    connection_tokens,
    dropped_request_header,
    dropped_response_header,
)
from gateway.proxy.state import UPSTREAM_STATUS

if TYPE_CHECKING:
    from gateway.metrics import Metrics

CHUNK = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def body_deadline(
    start: float, received: int, now: float, *, gap: float, min_rate: int
) -> float:
    """When the next read of a request body must have returned (mod_reqtimeout-style).

    Every read within ``gap`` seconds of the last, and on average ``min_rate``
    bytes a second once the first ``gap`` seconds are over (0: no minimum).
    """
    deadline = now + gap
    if min_rate:
        deadline = min(deadline, start + gap + received / min_rate)
    return deadline


class BodyStalled(Exception):
    """The client's request body stopped making progress."""


class PacedBody:
    """A request body on its way upstream: its reads are paced, its writes watched.

    A body that trickles in would otherwise hold a request and an upstream
    connection for ever: aiohttp's client starts its read timeout only once
    the body is sent. Between client reads the gateway waits at most until
    :func:`body_deadline`; while the upstream takes a chunk, ``watch`` (the
    timeout around the upstream request) allows it ``write_timeout``.
    """

    __slots__ = (
        "gap",
        "min_rate",
        "request",
        "send_continue",
        "stalled",
        "watch",
        "write_timeout",
    )

    def __init__(self, request: web.Request, *, gap: float, min_rate: int,
                 write_timeout: float, send_continue: bool) -> None:
        self.request = request
        self.gap = gap
        self.min_rate = min_rate
        self.write_timeout = write_timeout
        self.send_continue = send_continue
        self.watch: asyncio.Timeout | None = None
        self.stalled = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk; raises BodyStalled when it is too slow."""
        loop = asyncio.get_running_loop()
        if self.send_continue:
            # Only now (checks passed, upstream connected) may the client send.
            writer = self.request.writer
            await writer.write(CONTINUE)
            writer.output_size = 0  # as aiohttp's own expect handler: no response yet
        read = self.request.content.read
        start = loop.time()
        received = 0
        while True:
            deadline = body_deadline(start, received, loop.time(),
                                     gap=self.gap, min_rate=self.min_rate)
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await read(CHUNK)
            except TimeoutError:
                self.stalled = True
                raise BodyStalled() from None
            if not chunk:
                return
            received += len(chunk)
            self._watch(loop.time() + self.write_timeout)
            yield chunk
            self._watch(None)

    def _watch(self, when: float | None) -> None:
        if self.watch is not None:
            self.watch.reschedule(when)


class Forwarder:
    """The upstream side of the proxy: one pooled session, streamed bodies."""

    def __init__(
        self,
        upstream: str,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        metrics: Metrics,
        body_timeout: float = 10.0,
        body_min_rate: int = 1024,
        strip_method_overrides: bool = True,
    ) -> None:
        self.base = URL(upstream)
        # The normalised path is appended to the upstream's own base path.
        self.origin = str(self.base.origin()) + self.base.raw_path.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self.max_connections = max_connections
        self.read_timeout = timeout
        self.body_timeout = body_timeout
        self.body_min_rate = body_min_rate
        self.strip_method_overrides = strip_method_overrides
        self.metrics = metrics
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the pooled upstream session."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.max_connections, ttl_dns_cache=300, enable_cleanup_closed=False
            ),
            timeout=self.timeout,
            auto_decompress=False,  # pass bytes through as the upstream encoded them
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        """Close the upstream session."""
        if self.session is not None:
            await self.session.close()
            self.session = None

    def upstream_headers(
        self, request: web.BaseRequest, added: Sequence[tuple[str, str]]
    ) -> CIMultiDict[str]:
        """Client headers minus hop-by-hop, Authorization and spoofed identity; plus ours."""
        listed = connection_tokens(request.headers.getall("Connection", []))
        strip = self.strip_method_overrides
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in request.headers.items():
            if not dropped_request_header(name, listed, method_overrides=strip):
                headers.add(name, value)
        headers.extend(added)
        return headers

    async def forward(
        self,
        request: web.Request,
        path: str,
        added: Sequence[tuple[str, str]],
        response_headers: Sequence[tuple[str, str]],
    ) -> web.StreamResponse:
        """Send the request upstream (at ``path``) and stream the answer back.

        A client's ``Expect: 100-continue`` is answered here, once every check
        has passed and the upstream is connected, just before the body is read.
        """
        assert self.session is not None, "Forwarder.start() was not awaited"
        query = request.rel_url.raw_query_string
        url = URL(self.origin + path + ("?" + query if query else ""), encoded=True)
        headers = self.upstream_headers(request, added)
        expect = request.headers.get("Expect")
        if expect is not None and expect.lower() != "100-continue":
            raise ExpectationFailed(f"unsupported Expect: {expect[:64]!r}")
        body = None
        if request.body_exists:
            body = PacedBody(request, gap=self.body_timeout, min_rate=self.body_min_rate,
                             write_timeout=self.read_timeout,
                             send_continue=expect is not None and request.version >= (1, 1))
        start = time.perf_counter()
        try:
            async with asyncio.timeout(None) as watch:
                if body is not None:
                    body.watch = watch
                try:
                    upstream = await self.session.request(
                        request.method, url, headers=headers,
                        data=body.chunks() if body is not None else None,
                        allow_redirects=False, compress=None, proxy=None,
                    )
                finally:
                    if body is not None:
                        body.watch = None
        except TimeoutError:
            self.metrics.upstream(time.perf_counter() - start, None)
            request[UPSTREAM_STATUS] = None
            raise GatewayTimeout("the upstream did not answer in time") from None
        except (aiohttp.ClientError, OSError):
            self.metrics.upstream(time.perf_counter() - start, None)
            request[UPSTREAM_STATUS] = None
            if body is not None and body.stalled:
                # aiohttp drops the upstream connection: its body is incomplete.
                self.metrics.connections_closed.labels("body_timeout").inc()
                raise RequestTimeout("the request body arrived too slowly") from None
            raise BadGateway("the upstream could not be reached") from None
        request[UPSTREAM_STATUS] = upstream.status
        try:
            return await self._relay(request, upstream, response_headers)
        finally:
            upstream.release()
            self.metrics.upstream(time.perf_counter() - start, upstream.status)

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        extra: Sequence[tuple[str, str]],
    ) -> web.StreamResponse:
        listed = connection_tokens(upstream.headers.getall("Connection", []))
        # The gateway's own headers (rate limit, request id) replace any the
        # upstream set, so a client never reads the upstream's numbers first.
        ours = {name.lower() for name, _ in extra}
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in ours and not dropped_response_header(name, listed):
                response.headers.add(name, value)
        response.headers.extend(extra)
        if "Content-Length" not in upstream.headers and request.method != "HEAD":
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK):
                # A client that stops reading must not hold the upstream
                # connection: each write gets the upstream read timeout.
                async with asyncio.timeout(self.read_timeout):
                    await response.write(chunk)
        except (TimeoutError, aiohttp.ClientError, ConnectionResetError):
            # The status line is already sent, so no error response is
            # possible: cut the connection so the client sees a broken body
            # rather than a truncated one that looks complete.
            request[UPSTREAM_STATUS] = None
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
