"""The aiohttp upstream client (``upstream.client = "aiohttp"``): one pooled ClientSession.

The lean client (``upstream.py``) is the default; this one is kept for an
operator to fall back to and for the benchmark to compare against. Both sit
behind the same small interface in ``forward.py`` and pass the same tests.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from gateway.policy.headers import connection_tokens, dropped_response_header
from gateway.proxy.state import UPSTREAM_STATUS
from gateway.proxy.upstream import UpstreamFailed

if TYPE_CHECKING:
    from gateway.proxy.forward import PacedBody

CHUNK = 64 * 1024


class AiohttpClient:
    """The upstream side over aiohttp's client: one pooled session, streamed bodies."""

    def __init__(self, url: str, *, timeout: float, connect_timeout: float,
                 max_connections: int, idle_timeout: float, ca_file: str | None = None) -> None:
        parts = urlsplit(url)
        self.socket_path = parts.path if parts.scheme == "unix" else None
        self.origin = "http://localhost" if self.socket_path else str(URL(url).origin())
        self.tls = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                             sock_read=timeout)
        self.read_timeout = timeout
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the pooled upstream session."""
        connector: aiohttp.BaseConnector
        if self.socket_path is not None:
            connector = aiohttp.UnixConnector(self.socket_path, limit=self.max_connections,
                                              keepalive_timeout=self.idle_timeout)
        else:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, ttl_dns_cache=300, enable_cleanup_closed=False,
                keepalive_timeout=self.idle_timeout, ssl=self.tls if self.tls else True)
        self.session = aiohttp.ClientSession(
            connector=connector,
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

    async def exchange(self, request: web.Request, target: str, headers: list[tuple[str, str]],
                       body: PacedBody | None, extra: Sequence[tuple[str, str]]
                       ) -> web.StreamResponse:
        """Send the request, relay the answer; raises TimeoutError or UpstreamFailed."""
        assert self.session is not None, "AiohttpClient.start() was not awaited"
        url = URL(self.origin + target, encoded=True)
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
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamFailed(str(exc)) from None
        request[UPSTREAM_STATUS] = upstream.status
        try:
            return await self._relay(request, upstream, extra)
        finally:
            upstream.release()

    async def _relay(self, request: web.Request, upstream: aiohttp.ClientResponse,
                     extra: Sequence[tuple[str, str]]) -> web.StreamResponse:
        listed = connection_tokens(upstream.headers.getall("Connection", []))
        # The gateway's own headers (rate limit, request id) replace any the
        # upstream set, so a client never reads the upstream's numbers first.
        ours = {name.lower() for name, _ in extra}
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in ours and not dropped_response_header(name, listed):
                response.headers.add(name, value)
        response.headers.extend(extra)
        if "Content-Length" not in upstream.headers and request.method != "HEAD" \
                and request.version >= (1, 1):
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
            upstream.close()  # never back to the pool: its body was not read to the end
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
