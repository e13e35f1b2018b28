"""A lean, pipelined Redis connection for the one call on the hot path.

Profiling showed redis-py spending ~40 µs of CPU per ``EVALSHA`` (command
packing, pool acquire/release, retry wrappers, response handling) against
~5 µs in Redis itself. This connection does only what the rate-limit call
needs: commands are packed by hand and written as they come (writes issued in
the same event-loop turn leave in one syscall), replies are parsed by hiredis
and handed back in order. Everything else in the store keeps using redis-py.

Any failure (refused, reset, timeout, protocol error) fails every pending
call with :class:`RespError` and drops the connection; the next call
reconnects. A timed-out call cannot be matched with its late reply, which is
why a timeout drops the connection too.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import hiredis
from redis.connection import parse_url


class RespError(Exception):
    """The connection failed, timed out or Redis answered with an error."""


class RespReplyError(RespError):
    """Redis answered with an error reply (the connection is fine): ``MOVED``,
    ``ASK``, ``NOSCRIPT``, ``CLUSTERDOWN``..., the reply's text as the message."""


class HotPath(Protocol):
    """What the rate limiter sends its script through: one connection, or a
    cluster's router (``cluster.SlotRouter``), which needs the command's key."""

    async def call(self, command: bytes, *, key: str | None = None) -> Any:
        """Send one packed command; its reply."""

    async def close(self) -> None:
        """Close the connection(s)."""


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: RespConnection) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        pending = self.owner._pending
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.owner._fail(RespError(f"protocol error: {exc}"))
                return
            if reply is False:
                return
            if not pending:
                self.owner._fail(RespError("unexpected reply"))
                return
            future = pending.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._fail(RespError(f"connection lost: {type(exc).__name__ if exc else 'closed'}"))


class RespConnection:
    """One connection, many in-flight commands, replies in order."""

    def __init__(
        self, url: str, *, timeout: float = 2.0,
        resolve: Callable[[], Awaitable[tuple[str, int]]] | None = None,
    ) -> None:
        params = parse_url(url)  # type: ignore[no-untyped-call]
        self._url_scheme = urlsplit(url).scheme
        self._host = params.get("host", "127.0.0.1")
        self._port = int(params.get("port", 6379))
        self._path = params.get("path")
        self._db = int(params.get("db", 0) or 0)
        self._username = params.get("username")
        self._password = params.get("password")
        self._timeout = timeout
        # Sentinel: where the master is, asked again on every (re)connect.
        self._resolve = resolve
        self._protocol: _Protocol | None = None
        self._pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._connecting: asyncio.Lock | None = None
        self._buffer: list[bytes] = []
        self._flush_scheduled = False

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                if self._path:
                    _, proto = await asyncio.wait_for(loop.create_unix_connection(
                        lambda: _Protocol(self), self._path), self._timeout)
                else:
                    host, port = self._host, self._port
                    if self._resolve is not None:
                        host, port = await asyncio.wait_for(self._resolve(), self._timeout)
                    tls = ssl.create_default_context() if self._url_scheme == "rediss" else None
                    _, proto = await asyncio.wait_for(loop.create_connection(
                        lambda: _Protocol(self), host, port, ssl=tls), self._timeout)
            except Exception as exc:  # refused, timed out, or no master known to Sentinel
                raise RespError(f"cannot connect: {type(exc).__name__}") from exc
            self._protocol = proto
            setup = []
            if self._password:
                setup.append(pack("AUTH", *([self._username] if self._username else []),
                                  self._password))
            if self._db:
                setup.append(pack("SELECT", self._db))
            for command in setup:
                reply = await self._send(proto, command)
                if isinstance(reply, hiredis.ReplyError):
                    self._fail(RespError(f"redis refused the connection set-up: {reply}"))
                    raise RespError("redis refused the connection set-up")
            return proto

    def _fail(self, exc: RespError) -> None:
        """Fail every pending call and forget the connection."""
        proto, self._protocol = self._protocol, None
        self._buffer.clear()
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(exc)
        if proto is not None and proto.transport is not None:
            proto.transport.abort()

    def _flush(self) -> None:
        self._flush_scheduled = False
        proto = self._protocol
        if proto is not None and proto.transport is not None and self._buffer:
            proto.transport.write(b"".join(self._buffer))
        self._buffer.clear()

    def _enqueue(self, command: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(future)
        proto = self._protocol
        if len(self._pending) == 1 and proto is not None and proto.transport is not None:
            # Nothing else in flight: no other command is coming to share the
            # write, so waiting for the end of the loop turn only adds latency.
            proto.transport.write(command)
            return future
        self._buffer.append(command)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    async def _wait(self, future: asyncio.Future[Any]) -> Any:
        timer = asyncio.get_running_loop().call_later(self._timeout, self._timed_out, future)
        try:
            return await future
        finally:
            timer.cancel()

    async def _send(self, proto: _Protocol, command: bytes) -> Any:
        return await self._wait(self._enqueue(command))

    def _timed_out(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            self._fail(RespError("timed out"))

    async def call(self, command: bytes, *, key: str | None = None) -> Any:
        """Send one packed command; its reply (a ReplyError is raised as RespReplyError).

        ``key`` (the key the command is about) matters only to a cluster's
        router, which offers the same call; one connection ignores it.
        """
        proto = self._protocol or await self._connect()
        return self._checked(await self._send(proto, command))

    async def call_many(self, *commands: bytes) -> list[Any]:
        """Send commands back to back on this connection; every reply, in order.

        For commands that must reach Redis together (``ASKING`` and the command
        it is for). The last reply's error is raised; earlier ones are returned.
        """
        proto = self._protocol or await self._connect()
        del proto  # connected: the commands below share this connection
        futures = [self._enqueue(command) for command in commands]
        replies: list[Any] = []
        failed: RespError | None = None
        for future in futures:  # each awaited: a lost connection fails them all at once
            try:
                replies.append(await self._wait(future))
            except RespError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed
        return [*replies[:-1], self._checked(replies[-1])]

    def _checked(self, reply: Any) -> Any:
        if isinstance(reply, hiredis.ReplyError):
            if str(reply).startswith(("READONLY", "MASTERDOWN", "LOADING")):
                # A failover moved the master: reconnect (and re-resolve) next time.
                self._fail(RespError(str(reply)))
            raise RespReplyError(str(reply))
        return reply

    async def close(self) -> None:
        """Close the connection (pending calls fail)."""
        self._fail(RespError("closed"))
