"""The lean client's keep-alive pool: at most ``max_connections`` to one upstream.

Idle connections are kept last-in first-out, so under a steady load the
same few stay warm and the rest age out after ``idle_timeout`` (a sweep
closes them oldest first). One the upstream closed while it sat idle is
dropped when it is next taken, never written to. At the cap a request waits
(first come, first served) for a connection to come back or to be closed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.proxy.exchange import UpstreamConnection


@dataclass(frozen=True, slots=True)
class Dialer:
    """How to open a connection to the upstream: TCP (optionally TLS) or a unix socket."""

    host: str = ""
    port: int = 0
    path: str = ""
    tls: ssl.SSLContext | None = None

    @classmethod
    def for_url(cls, url: str, *, ca_file: str | None = None) -> Dialer:
        """The dialer for an ``http://``, ``https://`` or ``unix:/path`` upstream URL."""
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return cls(path=parts.path)
        tls = None
        if parts.scheme == "https":
            # Certificate and host name are checked (SNI sent) as for any client.
            tls = ssl.create_default_context(cafile=ca_file)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(host=parts.hostname or "", port=port, tls=tls)

    async def dial(self, timeout: float) -> UpstreamConnection:
        """A new connection, within ``timeout`` (TLS handshake included)."""
        loop = asyncio.get_running_loop()

        def protocol() -> UpstreamConnection:
            return UpstreamConnection(loop)

        async with asyncio.timeout(timeout):
            if self.path:
                _, conn = await loop.create_unix_connection(protocol, self.path)
            else:
                _, conn = await loop.create_connection(
                    protocol, self.host, self.port, ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None)
        return conn


class Pool:
    """Keep-alive connections to one upstream, capped, with idle eviction."""

    def __init__(self, dialer: Dialer, *, max_connections: int, idle_timeout: float) -> None:
        self.dialer = dialer
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._idle: list[UpstreamConnection] = []  # oldest first; taken from the end
        self._open = 0  # open or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self.closing = False

    @property
    def open(self) -> int:
        """Connections open or being opened (idle ones included)."""
        return self._open

    @property
    def idle(self) -> int:
        """Connections waiting in the pool."""
        return len(self._idle)

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection (the pool is at its cap)."""
        return sum(not w.done() for w in self._waiters)

    async def acquire(self, *, connect_timeout: float, wait_timeout: float,
                      fresh: bool = False) -> UpstreamConnection:
        """A connection for one exchange: a warm one, else a new one once under the cap.

        ``fresh`` skips the idle ones (a retry after a pooled connection failed).
        Waiting for a free slot takes at most ``wait_timeout`` (TimeoutError).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_timeout
        while True:
            if not fresh and (conn := self.take_idle()) is not None:
                return conn
            if self._open < self.max_connections:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass the slot on to the next in line
                else:
                    waiter.cancel()
                raise
        self._open += 1
        try:
            return await self.dialer.dial(connect_timeout)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    def take_idle(self) -> UpstreamConnection | None:
        """The warmest idle connection still open, without waiting (None: there is none)."""
        while self._idle:
            conn = self._idle.pop()
            if conn.usable:
                conn.reused = True
                return conn
            self.discard(conn)
        return None

    def release(self, conn: UpstreamConnection) -> None:
        """Give a connection back: kept when its exchange ended cleanly, else closed."""
        if self.closing or not conn.reusable:
            self.discard(conn)
            return
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        self._idle.append(conn)
        if self._waiters:
            self._wake_one()
        if self._sweep is None:
            self._sweep = loop.call_at(conn.idle_since + self.idle_timeout, self._evict)

    def discard(self, conn: UpstreamConnection) -> None:
        """Close a connection that cannot be used again (once per connection)."""
        if conn.discarded:
            return
        conn.discarded = True
        conn.close()
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _evict(self) -> None:
        """Close the connections idle for ``idle_timeout``; come back for the next oldest."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - self.idle_timeout
        idle = self._idle
        stale = 0
        while stale < len(idle) and idle[stale].idle_since <= cutoff:
            stale += 1
        for conn in idle[:stale]:
            self.discard(conn)
        del idle[:stale]
        if idle:
            self._sweep = loop.call_at(idle[0].idle_since + self.idle_timeout, self._evict)

    async def close(self) -> None:
        """Close every idle connection; those in use close when they come back."""
        self.closing = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for conn in idle:
            self.discard(conn)
        for waiter in self._waiters:
            waiter.cancel()
        self._waiters.clear()
