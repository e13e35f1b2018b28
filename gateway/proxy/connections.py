"""The proxy listener's connection guard: head deadline, idle limit, connection cap.

On its own, aiohttp's server waits about an hour for a request head that
trickles in, and accepts connections until the process runs out of file
descriptors; then the admin listener, the upstream pool and the store cannot
open one either. The guard wraps aiohttp's per-connection protocol so that:

* a request head arrives whole within ``header_timeout`` of its first byte (of
  the connection's opening, for the first request). The deadline is for the
  head, not per byte: one header line a second does not keep a slot;
* an idle keep-alive connection closes after ``idle_timeout`` (aiohttp's own
  keep-alive timer, set by the proxy app's handler arguments);
* at most ``cap`` connections are open. A connection over the cap evicts the
  one that has been quiet longest (idle, or still sending its head); only when
  every connection has a request in flight is the new one refused. Thousands
  of held sockets therefore never keep out a client that sends a request.

Deadlines live in two insertion-ordered dicts (oldest first) and one timer,
so a request on a keep-alive connection costs a few dict operations.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any, Final

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("tokengate.proxy")

CLOSE_REASONS: Final = ("header_timeout", "body_timeout", "evicted", "refused")
# Descriptors kept back for the admin listener, the store, logs and files.
FIXED_RESERVE: Final = 128
MIN_CAP: Final = 16


def connection_cap(requested: int, *, file_limit: int | None, upstream_pool: int) -> int:
    """The connection cap: ``requested``, but leaving descriptors for everything else.

    ``file_limit`` None means unlimited. A request uses at most one upstream
    connection, so when the limit is too small for both the cap and the full
    pool, half of what is left after the fixed reserve still covers both.
    """
    if file_limit is None:
        return requested
    room = file_limit - FIXED_RESERVE
    fits = max(room - min(upstream_pool, requested), room // 2)
    return max(MIN_CAP, min(requested, fits))


def raise_file_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return None if soft == resource.RLIM_INFINITY else soft
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # not allowed here: keep the soft limit
            pass
    return soft


class ConnectionGuard:
    """Open connections by phase: still sending a head, busy, or idle keep-alive."""

    def __init__(self, *, cap: int, header_timeout: float, closed_total: Any) -> None:
        self.cap = cap
        self.header_timeout = header_timeout
        self.open: set[GuardedHandler] = set()
        # Connection -> loop time it entered the phase; insertion order is age.
        self.heads: dict[GuardedHandler, float] = {}
        self.idle: dict[GuardedHandler, float] = {}
        self._count = {reason: closed_total.labels(reason) for reason in CLOSE_REASONS}
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    def count(self, reason: str) -> None:
        """Count one connection the gateway cut."""
        self._count[reason].inc()

    def opened(self, conn: GuardedHandler) -> bool:
        """Admit a new connection (evicting a quiet one at the cap); False: refuse it."""
        if len(self.open) >= self.cap:
            victim = self._oldest_quiet()
            if victim is None:
                self.count("refused")
                return False
            self.closed(victim)
            victim.force_close()
            self.count("evicted")
        self.open.add(conn)
        self._head(conn)
        return True

    def head_started(self, conn: GuardedHandler) -> None:
        """An idle keep-alive connection sent the first bytes of its next head."""
        del self.idle[conn]
        self._head(conn)

    def request_started(self, conn: object) -> None:
        """A whole head was parsed: the connection has a request in flight."""
        self.heads.pop(conn, None)  # type: ignore[call-overload]
        self.idle.pop(conn, None)  # type: ignore[call-overload]

    def request_finished(self, conn: GuardedHandler) -> None:
        """The response is sent; the connection waits for its next request."""
        if conn in self.open:
            self.idle[conn] = self._loop.time()

    def closed(self, conn: GuardedHandler) -> None:
        """Forget a connection (closed, or about to be)."""
        self.open.discard(conn)
        self.heads.pop(conn, None)
        self.idle.pop(conn, None)

    def stop(self) -> None:
        """Cancel the deadline timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def cut(self) -> int:
        """Cancel every request still in flight and close every connection; how many."""
        conns = list(self.open)
        for conn in conns:
            self.closed(conn)
            conn.cut()
        return len(conns)

    def _head(self, conn: GuardedHandler) -> None:
        now = self._loop.time()
        self.heads[conn] = now
        if self._timer is None:
            self._timer = self._loop.call_at(now + self.header_timeout, self._sweep)

    def _oldest_quiet(self) -> GuardedHandler | None:
        head = next(iter(self.heads.items()), None)
        idle = next(iter(self.idle.items()), None)
        if head is None or (idle is not None and idle[1] < head[1]):
            return idle[0] if idle is not None else None
        return head[0]

    def _sweep(self) -> None:
        self._timer = None
        now = self._loop.time()
        expired = []
        for conn, since in self.heads.items():
            if since + self.header_timeout > now:
                self._timer = self._loop.call_at(since + self.header_timeout, self._sweep)
                break
            expired.append(conn)
        for conn in expired:
            self.closed(conn)
            conn.force_close()
            self.count("header_timeout")


class GuardedHandler(RequestHandler):
    """aiohttp's connection protocol, reporting its phases to the guard."""

    __slots__ = ("_guard",)

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard

    def cut(self) -> None:
        """Cancel the request in flight (if any) and close the connection."""
        # Cancelling the connection's task cancels the handler task it awaits.
        if self._task_handler is not None:
            self._task_handler.cancel()
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the head deadline, or close at once when the guard refuses."""
        super().connection_made(transport)
        if not self._guard.opened(self):
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection."""
        self._guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Bytes after an idle spell begin a new head: its deadline starts now."""
        if data and self in self._guard.idle:
            self._guard.head_started(self)
        super().data_received(data)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Send the response, then count the connection idle."""
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._guard.request_finished(self)


class GuardedServer(web.Server):
    """aiohttp's low-level server, making guarded connections."""

    def __init__(self, handler: Any, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.guard = guard
        make_request = self.request_factory

        # Called by the connection when a whole head has been parsed, just
        # before the request is handled: the end of the head deadline.
        def request_factory(
            message: RawRequestMessage, payload: StreamReader, protocol: RequestHandler,
            writer: AbstractStreamWriter, task: asyncio.Task[None],
        ) -> web.BaseRequest:
            guard.request_started(protocol)
            return make_request(message, payload, protocol, writer, task)

        self.request_factory = request_factory

    def __call__(self) -> RequestHandler:
        """A new connection's protocol."""
        return GuardedHandler(self, self.guard, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server guards its connections."""

    def __init__(self, app: web.Application, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        # The same arguments AppRunner gave aiohttp's own server.
        return GuardedServer(
            plain.request_handler, guard=self.guard, request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation, loop=plain._loop, **plain._kwargs,
        )

    async def cleanup(self) -> None:
        """Stop the deadline timer, then aiohttp's drain and close."""
        self.guard.stop()
        await super().cleanup()
