"""Stream a request to the upstream and its response back, without buffering.

Bodies flow chunk by chunk in both directions through one pooled client
session, so a 200 MB upload or download costs the gateway a few buffers,
not 200 MB.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.policy.errors import BadGateway, GatewayTimeout
from gateway.policy.headers import (
    connection_tokens,
    dropped_request_header,
    dropped_response_header,
)
from gateway.proxy.state import UPSTREAM_STATUS

if TYPE_CHECKING:
    from gateway.metrics import Metrics

CHUNK = 64 * 1024


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
    ) -> None:
        self.base = URL(upstream)
        # The normalised path is appended to the upstream's own base path.
        self.origin = str(self.base.origin()) + self.base.raw_path.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self.max_connections = max_connections
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
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in request.headers.items():
            if not dropped_request_header(name, listed):
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
        """Send the request upstream (at ``path``) and stream the answer back."""
        assert self.session is not None, "Forwarder.start() was not awaited"
        query = request.rel_url.raw_query_string
        url = URL(self.origin + path + ("?" + query if query else ""), encoded=True)
        headers = self.upstream_headers(request, added)
        body = request.content.iter_chunked(CHUNK) if request.body_exists else None
        start = time.perf_counter()
        try:
            upstream = await self.session.request(
                request.method, url, headers=headers, data=body,
                allow_redirects=False, compress=None, proxy=None,
            )
        except TimeoutError:
            self.metrics.upstream(time.perf_counter() - start, None)
            request[UPSTREAM_STATUS] = None
            raise GatewayTimeout("the upstream did not answer in time") from None
        except (aiohttp.ClientError, OSError):
            self.metrics.upstream(time.perf_counter() - start, None)
            request[UPSTREAM_STATUS] = None
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
