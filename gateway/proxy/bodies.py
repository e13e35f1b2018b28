"""Bodies on the upstream side: the answer's as it arrives, the request's as it is sent.

An answer's body is decoded by the parser (httptools: ``chunked`` framing
undone, trailers dropped) and lands in a :class:`BodyReader`, which holds at
most about ``HIGH_WATER`` bytes: past that the upstream socket stops being
read until the client has taken what is there, so a slow client slows the
upstream instead of filling the gateway's memory. A request body goes out as
it comes in, by its ``Content-Length`` or re-chunked, each write waiting for
the upstream to take it (:func:`send_body`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

HIGH_WATER = 256 * 1024
LAST_CHUNK = b"0\r\n\r\n"


def chunk_size_line(size: int) -> bytes:
    """The size line that starts one chunk of ``size`` bytes (chunked transfer coding)."""
    return b"%x\r\n" % size


class Reading(Protocol):
    """The side of a transport the reader pauses and resumes."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class BodyReader:
    """The answer's body between the parser and the relay, with flow control."""

    __slots__ = ("_chunks", "_done", "_error", "_loop", "_paused", "_reading", "_size",
                 "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, reading: Reading) -> None:
        self._loop = loop
        self._reading = reading
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def done(self) -> bool:
        """The whole body has arrived (it may not all have been read yet)."""
        return self._done

    @property
    def drained(self) -> bool:
        """Everything that arrived has been read."""
        return not self._chunks

    def feed(self, data: bytes) -> None:
        """More of the body, from the parser."""
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._reading.pause_reading()
        self._wake()

    def finish(self) -> None:
        """The body is complete."""
        self._done = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The body will not complete: the next read raises ``error``."""
        if not self._done and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take_all(self) -> bytes | None:
        """The whole body if it has already arrived (small answers, one write), else None."""
        if not self._done or self._error is not None:
            return None
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        return data

    async def read(self, timeout: float) -> bytes:
        """What has arrived (waiting at most ``timeout`` for something); b"" at the end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            self._reading.resume_reading()
        return data


class Sending(Protocol):
    """What :func:`send_body` needs of an upstream connection."""

    def write(self, data: bytes) -> None: ...
    def writelines(self, data: list[bytes]) -> None: ...
    async def drain(self, timeout: float) -> None: ...
    @property
    def answered(self) -> bool: ...


class BodyLengthMismatch(Exception):
    """The client's body was not as long as its Content-Length said."""


async def send_body(conn: Sending, chunks: AsyncIterator[bytes], length: int | None,
                    write_timeout: float) -> bool:
    """Send a request body: as it is (``length`` bytes) or re-chunked (``length`` None).

    Each chunk waits (at most ``write_timeout``) until the upstream has taken
    the previous ones. Returns False when the upstream answered before the
    body was complete (sending stops there: that answer is the one relayed,
    and the connection cannot be used again).
    """
    sent = 0
    async for chunk in chunks:
        if conn.answered:
            return False
        sent += len(chunk)
        if length is None:
            conn.writelines([chunk_size_line(len(chunk)), chunk, b"\r\n"])
        else:
            if sent > length:
                raise BodyLengthMismatch(f"more than the {length} bytes announced")
            conn.write(chunk)
        await conn.drain(write_timeout)
    if conn.answered:
        return False
    if length is None:
        conn.write(LAST_CHUNK)
    elif sent != length:
        raise BodyLengthMismatch(f"{sent} of the {length} bytes announced")
    return True
