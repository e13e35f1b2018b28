"""Stream a request to the upstream and its response back, without buffering.

Bodies flow chunk by chunk in both directions through a pool of upstream
connections, so a 200 MB upload or download costs the gateway a few
buffers, not 200 MB. What is forwarded (headers, target, the paced body,
``Expect``) is decided here; how it travels is an :class:`UpstreamClient`'s
business: the lean one (``upstream.py``, the default) or aiohttp's
(``aiohttp_client.py``), chosen by ``upstream.client``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from aiohttp import web
from yarl import URL

from gateway.policy.errors import BadGateway, ExpectationFailed, GatewayTimeout, RequestTimeout
from gateway.policy.headers import connection_tokens, dropped_request_header
from gateway.proxy.state import UPSTREAM_STATUS
from gateway.proxy.upstream import LeanClient, UpstreamFailed

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
        "started",
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
        self.started = False  # a byte may have been read: the body cannot be sent again

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk; raises BodyStalled when it is too slow."""
        loop = asyncio.get_running_loop()
        self.started = True
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


class UpstreamClient(Protocol):
    """How a request travels to the upstream and its answer back (lean or aiohttp)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def exchange(self, request: web.Request, target: str, headers: list[tuple[str, str]],
                       body: PacedBody | None, extra: Sequence[tuple[str, str]]
                       ) -> web.StreamResponse:
        """Forward, relay; set UPSTREAM_STATUS; raise TimeoutError or UpstreamFailed."""
        ...


def upstream_client(kind: Literal["lean", "aiohttp"], url: str, *, timeout: float,
                    connect_timeout: float, max_connections: int, idle_timeout: float,
                    ca_file: str | None) -> UpstreamClient:
    """The client ``upstream.client`` names."""
    if kind == "aiohttp":
        from gateway.proxy.aiohttp_client import AiohttpClient

        return AiohttpClient(url, timeout=timeout, connect_timeout=connect_timeout,
                             max_connections=max_connections, idle_timeout=idle_timeout,
                             ca_file=ca_file)
    return LeanClient(url, timeout=timeout, connect_timeout=connect_timeout,
                      max_connections=max_connections, idle_timeout=idle_timeout,
                      ca_file=ca_file)


class Forwarder:
    """The upstream side of the proxy: what is forwarded, and the client that carries it."""

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
        client: Literal["lean", "aiohttp"] = "lean",
        idle_timeout: float = 30.0,
        ca_file: str | None = None,
    ) -> None:
        # The normalised path is appended to the upstream's own base path.
        self.base_path = "" if upstream.startswith("unix:") else URL(upstream).raw_path.rstrip("/")
        self.read_timeout = timeout
        self.body_timeout = body_timeout
        self.body_min_rate = body_min_rate
        self.strip_method_overrides = strip_method_overrides
        self.metrics = metrics
        self.own_length = client == "lean"
        self.client = upstream_client(client, upstream, timeout=timeout,
                                      connect_timeout=connect_timeout,
                                      max_connections=max_connections,
                                      idle_timeout=idle_timeout, ca_file=ca_file)

    async def start(self) -> None:
        """Open the upstream client."""
        await self.client.start()

    async def close(self) -> None:
        """Close the upstream client and its connections."""
        await self.client.close()

    def upstream_headers(
        self, request: web.BaseRequest, added: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """Client headers minus hop-by-hop, Authorization and spoofed identity; plus ours."""
        listed = connection_tokens(request.headers.getall("Connection", []))
        if self.own_length:
            # The lean client frames the body itself (Content-Length or chunked).
            listed |= {"content-length"}
        strip = self.strip_method_overrides
        headers = [(name, value) for name, value in request.headers.items()
                   if not dropped_request_header(name, listed, method_overrides=strip)]
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
        query = request.rel_url.raw_query_string
        target = self.base_path + path + ("?" + query if query else "")
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
            return await self.client.exchange(request, target, headers, body, response_headers)
        except TimeoutError:
            request[UPSTREAM_STATUS] = None
            raise GatewayTimeout("the upstream did not answer in time") from None
        except (UpstreamFailed, BodyStalled):
            request[UPSTREAM_STATUS] = None
            if body is not None and body.stalled:
                # The upstream connection is dropped: its body is incomplete.
                self.metrics.connections_closed.labels("body_timeout").inc()
                raise RequestTimeout("the request body arrived too slowly") from None
            raise BadGateway("the upstream could not be reached") from None
        finally:
            self.metrics.upstream(time.perf_counter() - start, request.get(UPSTREAM_STATUS))
