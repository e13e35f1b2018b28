"""A raw-socket HTTP/1.1 upstream for the lean client's tests: it answers with exact bytes.

Each connection reads request heads (and ``Content-Length`` bodies) one after
another and answers each with whatever ``answer`` returns for it, sent whole,
byte by byte or split in two, so the gateway's parser sees every framing
case arrive across reads. It counts connections and requests, and notes
which connections the gateway closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\r$")
CHUNKED = re.compile(rb"(?im)^transfer-encoding:\s*chunked\r$")


@dataclass
class Received:
    """One request as it reached the upstream."""

    conn: int
    method: str
    target: str
    head: bytes
    body: bytes


@dataclass
class Reply:
    """What to send back: the bytes, how to deliver them, and whether to close after."""

    data: bytes
    delivery: str = "whole"  # "whole", "bytewise" or "split:<offset>"
    close: bool = False


Answer = Callable[[Received], Awaitable[Reply | None] | Reply | None]


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


@dataclass
class RawUpstream:
    """The server; ``answer`` decides each reply (None: close without answering)."""

    answer: Answer
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    closed_by_gateway: list[int] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> RawUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port,
                                                 reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and cut every open connection (as a crashing server would)."""
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self.writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    if not getattr(exc, "partial", b""):
                        self.closed_by_gateway.append(conn)  # EOF or reset between requests
                    return
                if CHUNKED.search(head):
                    body = await _read_chunked(reader)
                else:
                    length = LENGTH.search(head)
                    body = await reader.readexactly(int(length.group(1))) if length else b""
                method, target = head.split(b" ", 2)[:2]
                seen = Received(conn, method.decode(), target.decode(), head, body)
                self.received.append(seen)
                reply = self.answer(seen)
                if asyncio.iscoroutine(reply):
                    reply = await reply
                if reply is None:
                    return
                try:
                    await send(writer, reply)
                except ConnectionError:
                    self.closed_by_gateway.append(conn)  # while the answer was still going out
                    return
                if reply.close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.open_now -= 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Wait (bounded) until ``condition()`` holds; whether it did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def send(writer: asyncio.StreamWriter, reply: Reply) -> None:
    """Write ``reply.data`` as ``reply.delivery`` says, yielding to the loop between parts."""
    data = reply.data
    if reply.delivery == "whole":
        parts = [data]
    elif reply.delivery == "bytewise":
        parts = [data[i:i + 1] for i in range(len(data))]
    else:
        cut = int(reply.delivery.partition(":")[2])
        parts = [data[:cut], data[cut:]]
    for part in parts:
        writer.write(part)
        await writer.drain()
        # One loop turn between parts: the gateway (on this loop) reads each
        # part before the next is sent, so its parser sees them separately.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
