"""One upstream connection, one request/response exchange at a time (asyncio.Protocol).

httptools (the llhttp binding uvicorn uses) parses the answer in C; this
protocol collects its head, decides its framing (``wire.response_framing``),
and feeds its body to a :class:`~gateway.proxy.bodies.BodyReader`. Anything
the connection cannot vouch for — bytes nobody asked for, an answer that
framing rules refuse, a parser error, an early close — makes it unusable:
it is closed, never returned to the pool.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import cast

import httptools

from gateway.proxy.bodies import BodyReader, _expire
from gateway.proxy.wire import Body, Framing, FramingError, response_framing

# An answer's status line and headers longer than this are refused: llhttp
# sets no bound of its own, and the headers are held until the head ends.
MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Head:
    """An answer's status line and headers (as the upstream sent them), and its framing."""

    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    framing: Framing


class ConnectionClosed(Exception):
    """The upstream closed or reset the connection before the exchange was over.

    ``untouched``: not one byte of an answer had arrived, so the upstream
    may never have seen the request (a pooled connection it had just closed).
    """

    def __init__(self, untouched: bool) -> None:
        super().__init__("the upstream closed the connection")
        self.untouched = untouched


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return (int(major), int(minor or 0))


class UpstreamConnection(asyncio.Protocol):
    """A keep-alive connection to the upstream, as the pool and the lean client use it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.discarded = False
        self.idle_since = 0.0
        self.body: BodyReader | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._method = "GET"
        self._received = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._head: Head | None = None
        self._head_waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._complete = False
        self._interim = False
        self._dirty = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # --- the exchange, as the client drives it ----------------------------------

    def begin(self, method: str) -> None:
        """Start an exchange: the next bytes from the upstream are the answer to ``method``."""
        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self._method = method
        self._received = 0
        self._reason = b""
        self._headers = []
        self._head_bytes = 0
        self._head = None
        self._complete = self._interim = False
        self.body = BodyReader(self.loop, self.transport)

    @property
    def usable(self) -> bool:
        """Open, and with nothing left over from an earlier exchange."""
        return (not self.closed and not self._dirty and self._error is None
                and self.transport is not None and not self.transport.is_closing())

    @property
    def answered(self) -> bool:
        """The upstream has answered (or failed) while the request was still being sent."""
        return self._head is not None or self._error is not None

    @property
    def reusable(self) -> bool:
        """The exchange completed cleanly and the answer allows another request."""
        head = self._head
        return (self._complete and self.usable and head is not None
                and head.framing.keep_alive and self.body is not None and self.body.drained)

    def write(self, data: bytes) -> None:
        """Send bytes; raises ConnectionClosed when the upstream has gone."""
        if self.closed or self._error is not None or self.transport is None:
            raise self._error or ConnectionClosed(self._received == 0)
        self.transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        """Send several buffers in one go."""
        if self.closed or self._error is not None or self.transport is None:
            raise self._error or ConnectionClosed(self._received == 0)
        self.transport.writelines(data)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the upstream has taken what was written."""
        if not self._write_paused:
            return
        waiter = self._drain_waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._drain_waiter = None
        if self.closed or self._error is not None:
            raise self._error or ConnectionClosed(self._received == 0)

    async def response_head(self, timeout: float) -> Head:
        """The answer's head (1xx interim answers skipped), waiting at most ``timeout``."""
        if self._head is None and self._error is None:
            waiter = self._head_waiter = self.loop.create_future()
            timer = self.loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._head_waiter = None
        if self._error is not None:
            raise self._error
        assert self._head is not None
        return self._head

    def spoil(self) -> None:
        """Never reuse this connection (the request went out incomplete): it closes on release."""
        self._dirty = True

    def close(self) -> None:
        """Drop the connection."""
        self._dirty = True
        if self.transport is not None and not self.closed:
            self.transport.close()

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but are ones.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # The head goes out in one write; Nagle would hold a body's first
            # small chunk (or the next request) for the ACK of the last.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self._complete or self._error is not None:
            # Bytes no request asked for: whatever they are, the connection
            # can no longer tell one answer from the next.
            self.close()
            return
        self._received += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(FramingError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(FramingError(str(exc)))
        else:
            if self._head is None and self._received > MAX_HEAD_BYTES:
                self._fail(FramingError("the answer's head is too large"))

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self._complete and self._error is None:
            head = self._head
            if exc is None and head is not None and head.framing.body is Body.CLOSE:
                self._finish()  # a close-delimited body ends here
            else:
                self._fail(ConnectionClosed(self._received == 0))
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- httptools callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            self._dirty = True  # a second answer to one request

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head is None:
            self._headers.append((name, value))
            self._head_bytes += len(name) + len(value)
        # else: a trailer of a chunked body; trailers are not relayed.

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows.
            self._interim = True
            self._headers = []
            self._reason = b""
            return
        if self._head_bytes > MAX_HEAD_BYTES:
            self._fail(FramingError("the answer's head is too large"))
            return
        try:
            framing = response_framing(status, self._method,
                                       _version(parser.get_http_version()), self._headers)
        except FramingError as exc:
            self._fail(exc)
            return
        self._head = Head(status, self._reason.decode("latin-1"), self._headers, framing)
        if framing.body is Body.NONE:
            self._finish()
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, data: bytes) -> None:
        if self._complete or self._error is not None or self.body is None:
            self._dirty = True  # a body where there must be none (a HEAD's, a 304's)
            return
        self.body.feed(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
        elif not self._complete and self._error is None:
            self._finish()

    # --- ends ------------------------------------------------------------------------

    def _finish(self) -> None:
        self._complete = True
        if self.body is not None:
            self.body.finish()

    def _fail(self, error: BaseException) -> None:
        if self._error is not None:
            return
        self._error = error
        if self.body is not None:
            self.body.fail(error)
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.close()
