"""The lean upstream client: HTTP/1.1 over pooled asyncio protocols, parsed by httptools.

Per request it writes the head in one write (``wire.request_head``), streams
the body if there is one, waits for the answer's head and relays the answer
(in one write when it has arrived whole, else chunk by chunk as the client
takes it). Every phase has a deadline: the connect (``connect_timeout``),
each write of the body and the wait for the head and for each later read
(``timeout``). An answer whose framing is refused, a reset or a close is a
502 before the status line is relayed, a cut connection after it.

A pooled connection the upstream closed before answering is tried once more
on a new connection, only for idempotent methods and a body not yet read:
nothing else can be proven unsent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.policy.headers import HOP_BY_HOP, connection_tokens
from gateway.proxy.bodies import BodyLengthMismatch, send_body
from gateway.proxy.exchange import ConnectionClosed, Head, UpstreamConnection
from gateway.proxy.pool import Dialer, Pool
from gateway.proxy.state import UPSTREAM_STATUS
from gateway.proxy.wire import IDEMPOTENT, Body, FramingError, no_body, request_head

if TYPE_CHECKING:
    from gateway.proxy.forward import PacedBody

# What makes an exchange a 502 (the request body's own read errors included:
# the client went away mid-upload, and the upstream got an incomplete request).
FAILURES = (ConnectionClosed, FramingError, BodyLengthMismatch, OSError, HttpProcessingError)


class UpstreamFailed(Exception):
    """The upstream could not be reached, went away, or answered something unrelayable."""


def upstream_host(url: str) -> str:
    """The ``Host`` the upstream is sent: its URL's host and port (``localhost`` on a socket)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return "localhost"
    return parts.netloc.rpartition("@")[2]


HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
_skip_sets: dict[tuple[str, ...], frozenset[bytes]] = {}


def _skipped(extra: Sequence[tuple[str, str]]) -> frozenset[bytes]:
    """Hop-by-hop names and the gateway's own (one set per list of names: they repeat)."""
    names = tuple(name for name, _ in extra)
    skip = _skip_sets.get(names)
    if skip is None:
        if len(_skip_sets) > 64:
            _skip_sets.clear()
        skip = _skip_sets[names] = HOP_BY_HOP_BYTES | {n.lower().encode() for n in names}
    return skip


def copy_headers(response: web.StreamResponse, head: Head,
                 extra: Sequence[tuple[str, str]]) -> None:
    """The upstream's headers minus hop-by-hop ones and those the gateway sets, then ours.

    The gateway's own headers (rate limit, request id) replace any the
    upstream set, so a client never reads the upstream's numbers first.
    """
    skip = _skipped(extra)
    out = response.headers
    listed = b""
    for name, value in head.headers:
        lower = name.lower()
        if lower in skip:
            if lower == b"connection":
                listed += value + b","
            continue
        # Valid UTF-8 passes through as it came; anything else is replaced
        # rather than re-encoded into different bytes.
        out.add(name.decode("latin-1"), value.decode("utf-8", "replace"))
    if listed:  # headers the upstream's Connection names are hop-by-hop too
        for token in connection_tokens([listed.decode("latin-1")]):
            out.popall(token, None)
    out.extend(extra)


class LeanClient:
    """One upstream, one pool; ``exchange`` forwards a request and relays the answer."""

    def __init__(self, url: str, *, timeout: float, connect_timeout: float,
                 max_connections: int, idle_timeout: float, ca_file: str | None = None) -> None:
        self.host = upstream_host(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.pool = Pool(Dialer.for_url(url, ca_file=ca_file),
                         max_connections=max_connections, idle_timeout=idle_timeout)

    async def start(self) -> None:
        """Nothing to open ahead: connections are made on first use."""

    async def close(self) -> None:
        """Close the pool's connections."""
        await self.pool.close()

    async def _acquire(self, *, fresh: bool = False) -> UpstreamConnection:
        # At the cap a request waits for a slot, but not for ever: at most as
        # long as a request already waiting for its answer can hold one.
        return await self.pool.acquire(connect_timeout=self.connect_timeout,
                                       wait_timeout=self.timeout + self.connect_timeout,
                                       fresh=fresh)

    async def _send(self, conn: UpstreamConnection, method: str, head: bytes,
                    body: PacedBody | None, length: int | None) -> Head:
        conn.begin(method)
        conn.write(head)
        if body is not None and not await send_body(conn, body.chunks(), length, self.timeout):
            # Answered early: the upstream's parser is still inside our body.
            conn.spoil()
        return await conn.response_head(self.timeout)

    async def exchange(self, request: web.Request, target: str, headers: list[tuple[str, str]],
                       body: PacedBody | None, extra: Sequence[tuple[str, str]]
                       ) -> web.StreamResponse:
        """Send the request, relay the answer; raises TimeoutError or UpstreamFailed."""
        method = request.method
        length = 0 if body is None else request.content_length  # None: re-chunked
        try:
            head_bytes = request_head(method, target, self.host, headers, length)
        except ValueError as exc:
            raise UpstreamFailed(str(exc)) from None
        conn = self.pool.take_idle() or await self._acquire_or_fail()
        try:
            try:
                head = await self._send(conn, method, head_bytes, body, length)
            except ConnectionClosed as exc:
                self.pool.discard(conn)
                if not (conn.reused and exc.untouched and method in IDEMPOTENT
                        and (body is None or not body.started)):
                    raise
                conn = await self._acquire_or_fail(fresh=True)
                head = await self._send(conn, method, head_bytes, body, length)
        except TimeoutError:  # an OSError too, but a 504, not a 502
            self.pool.discard(conn)
            raise
        except FAILURES as exc:
            self.pool.discard(conn)
            raise UpstreamFailed(str(exc)) from None
        except BaseException:
            self.pool.discard(conn)
            raise
        request[UPSTREAM_STATUS] = head.status
        return await self._relay(request, conn, head, extra)

    async def _acquire_or_fail(self, *, fresh: bool = False) -> UpstreamConnection:
        try:
            return await self._acquire(fresh=fresh)
        except TimeoutError:
            raise
        except OSError as exc:  # refused, unreachable, TLS verification failed
            raise UpstreamFailed(str(exc)) from None

    async def _relay(self, request: web.Request, conn: UpstreamConnection, head: Head,
                     extra: Sequence[tuple[str, str]]) -> web.StreamResponse:
        framing = head.framing.body
        reader = conn.body
        assert reader is not None
        whole = reader.take_all()
        reason = head.reason or None
        if whole is not None and framing is not Body.NONE:
            # Arrived whole (most answers): the connection goes back first;
            # aiohttp writes status, headers and body in one write once the
            # handler chain returns (a StreamResponse sends its head alone).
            self.pool.release(conn)
            answer = web.Response(status=head.status, reason=reason, body=whole or None)
            copy_headers(answer, head, extra)  # Content-Length: the upstream's, or len(whole)
            return answer
        response = web.StreamResponse(status=head.status, reason=reason)
        copy_headers(response, head, extra)
        if whole is not None:  # no body: HEAD, 204, 304, Content-Length: 0
            self.pool.release(conn)
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionResetError:
                pass  # the client went away; nothing is left to relay
            return response
        if framing is not Body.LENGTH and not no_body(head.status, request.method) \
                and request.version >= (1, 1):
            response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            while chunk := await reader.read(self.timeout):
                # A client that stops reading must not hold the upstream
                # connection: each write gets the upstream read timeout.
                async with asyncio.timeout(self.timeout):
                    await response.write(chunk)
        except (TimeoutError, ConnectionResetError, *FAILURES):
            # The status line is already sent, so no error response is
            # possible: cut the connection so the client sees a broken body
            # rather than a truncated one that looks complete.
            self.pool.discard(conn)
            request[UPSTREAM_STATUS] = None
            if request.transport is not None:
                request.transport.close()
            return response
        except BaseException:
            self.pool.discard(conn)
            raise
        self.pool.release(conn)
        await response.write_eof()
        return response
