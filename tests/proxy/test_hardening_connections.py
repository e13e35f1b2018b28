"""Hostile traffic at the connection level, against real gateway processes (issue 11).

Held and slow sockets, trickled bodies, ``Expect: 100-continue``, big
unauthenticated bodies and SIGTERM with a slow upstream. Every attack runs
over real TCP on 127.0.0.1; timeouts are configured small (1-2 s) and every
wait is a bounded loop whose bound has generous slack for a busy machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import resource
import select
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.proxy.connections import FIXED_RESERVE, MIN_CAP, connection_cap
from gateway.proxy.forward import body_deadline
from tests.conftest import BOTH_CLIENTS, GatewayProcess, RecordingUpstream, basic, free_port
from tests.proxy.test_proxy import get
from tests.rules.support import GatewayFactory

GB = 1024 * 1024 * 1024


def workspace_auth(gp: GatewayProcess) -> str:
    """An Authorization header for a new workspace token on ``gp``."""
    gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    status, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "t"})
    assert status == 201, tok
    return basic(tok["token"], tok["secret"])


def address(url: str) -> tuple[str, int]:
    """``(host, port)`` of an ``http://host:port`` URL."""
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


@dataclass
class Head:
    """A response head read off a raw connection."""

    status: int
    headers: CIMultiDict[str]


async def read_head(reader: asyncio.StreamReader, timeout: float = 10) -> Head:
    """Read one response head (status line and headers)."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *lines = raw.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return Head(int(status_line.split()[1]), headers)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True once the server closes the connection (EOF or reset) within ``timeout``."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def metric(gp: GatewayProcess, name: str, **labels: str) -> float:
    """One sample of the gateway's /metrics (0 when absent)."""
    body = urllib.request.urlopen(gp.admin + "/metrics", timeout=10).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + ("{" + want + "}" if want else "")) + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# --- pure logic -----------------------------------------------------------------


@pytest.mark.parametrize(("requested", "file_limit", "pool", "cap"), [
    (10000, None, 1000, 10000),                                  # unlimited: as configured
    (10000, 1048576, 1000, 10000),                               # plenty of room
    (10000, 20000, 1000, 10000),                                 # room for cap and pool
    (20000, 20000, 1000, 20000 - FIXED_RESERVE - 1000),          # lowered for the pool
    (10000, 4096, 1000, 4096 - FIXED_RESERVE - 1000),
    (10000, 1024, 1000, (1024 - FIXED_RESERVE) // 2),            # pool too big: share the room
    (200, 600, 10, 200),                                         # the small one used below
    (10000, 100, 10, MIN_CAP),                                   # absurdly small: a floor
])
def test_connection_cap_stays_below_the_file_limit(
    requested: int, file_limit: int | None, pool: int, cap: int
) -> None:
    """The cap is the configured one, lowered to leave descriptors for the pool and the rest."""
    assert connection_cap(requested, file_limit=file_limit, upstream_pool=pool) == cap


@pytest.mark.parametrize(("received", "now", "deadline"), [
    (0, 0.0, 10.0),           # nothing yet: the first gap
    (0, 5.0, 10.0),           # 1 byte every 5 s is held to the first gap ...
    (2, 9.9, 10.0 + 2 / 1024),  # ... and cut just after it
    (10240, 9.0, 19.0),       # 1 KiB/s exactly: the gap still rules
    (1 << 20, 30.0, 40.0),    # fast: only the gap since the last read
    (5120, 14.0, 15.0),       # fell behind 1 KiB/s: the rate rules
])
def test_body_deadline_is_a_gap_and_a_minimum_rate(
    received: int, now: float, deadline: float
) -> None:
    """The next body read must come within the gap and keep 1 KiB/s after the first gap."""
    assert body_deadline(0.0, received, now, gap=10.0, min_rate=1024) == pytest.approx(deadline)


def test_body_deadline_without_a_minimum_rate_is_only_the_gap() -> None:
    """With ``body_min_rate_bytes = 0`` only the gap between reads counts."""
    assert body_deadline(0.0, 1, 100.0, gap=10.0, min_rate=0) == 110.0


# --- connection exhaustion -------------------------------------------------------


@contextlib.contextmanager
def held_sockets(target: tuple[str, int], count: int) -> Iterator[list[socket.socket]]:
    """Open ``count`` non-blocking connections to ``target``; close them all afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 512
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"needs {want} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            err = s.connect_ex(target)
            assert err in (0, errno.EINPROGRESS, errno.EAGAIN), errno.errorcode.get(err)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def wait_connected(socks: list[socket.socket], seconds: float) -> int:
    """Wait (bounded) until the connects finished one way or another; how many are pending."""
    poller = select.poll()
    pending = {s.fileno(): s for s in socks}
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            poller.unregister(fd)
            pending.pop(fd, None)
    return len(pending)


def evictions(gp: GatewayProcess) -> float:
    """How many connections the gateway evicted to make room for new ones."""
    return metric(gp, "tokengate_connections_closed_total", reason="evicted")


async def test_thousands_of_held_sockets_do_not_keep_out_a_valid_client(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """With 3000 idle and half-sent connections held against a gateway whose file limit is
    600, an authenticated request and /healthz still answer; the oldest quiet ones were evicted."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, extra_env={
        "TOKENGATE_PROXY_MAX_CONNECTIONS": "200", "TOKENGATE_UPSTREAM_MAX_CONNECTIONS": "10",
        # Held heads stay for the whole test: eviction, not the deadline, makes room.
        "TOKENGATE_PROXY_HEADER_TIMEOUT_SECONDS": "120", "TOKENGATE_LOG_ACCESS": "false"})
    auth = workspace_auth(gp)
    # Far fewer descriptors than attacking sockets: without a cap, accept()
    # would use them all up and the admin listener and upstream pool none.
    resource.prlimit(gp.proc.pid, resource.RLIMIT_NOFILE, (600, 600))
    loop = asyncio.get_running_loop()
    with held_sockets(address(gp.proxy), 3000) as socks:
        await loop.run_in_executor(None, wait_connected, socks, 30)
        for s in socks[::2]:  # every other one starts a head it never finishes
            with contextlib.suppress(OSError):
                s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(100):  # bounded (~20 s): until the gateway is well past its cap
            evicted = await loop.run_in_executor(None, evictions, gp)
            if evicted >= 1000:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail(f"only {evicted} connections evicted")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            async with session.get(gp.proxy + "/api/default/reports",
                                   headers={"Authorization": auth}) as r:
                assert r.status == 200
            async with session.get(gp.admin + "/healthz") as r:
                assert r.status == 200
        assert await loop.run_in_executor(None, evictions, gp) > evicted  # ours made room
    assert gp.proc.poll() is None


async def test_slowloris_heads_are_cut_at_the_header_deadline(
    gateway_factory: GatewayFactory, redis_url: str
) -> None:
    """Sockets that send one header line a second are closed once header_timeout_seconds (2 s)
    have passed since they connected, however steadily they trickle."""
    gp = gateway_factory(store_url=redis_url, upstream=f"http://127.0.0.1:{free_port()}",
                         extra_env={"TOKENGATE_PROXY_HEADER_TIMEOUT_SECONDS": "2"})
    host, port = address(gp.proxy)
    conns = [await asyncio.open_connection(host, port) for _ in range(20)]
    opened = time.monotonic()
    closed_after: dict[int, float] = {}
    for writer in (w for _, w in conns):
        writer.write(b"GET /api/default/reports HTTP/1.1\r\nHost: x\r\n")
    for line in range(15):  # bounded: the deadline is 2 s, this loop runs ~15 s at most
        await asyncio.sleep(1)
        for i, (reader, writer) in enumerate(conns):
            if i in closed_after:
                continue
            if reader.at_eof() or writer.is_closing():
                closed_after[i] = time.monotonic() - opened
                continue
            with contextlib.suppress(ConnectionError):
                writer.write(f"X-Slow-{line}: {'a' * 10}\r\n".encode())
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(1), 0.01)
        if len(closed_after) == len(conns):
            break
    for _, writer in conns:
        writer.close()
    assert len(closed_after) == len(conns), f"still open: {len(conns) - len(closed_after)}"
    assert all(1.5 <= t < 10 for t in closed_after.values()), closed_after
    assert metric(gp, "tokengate_connections_closed_total", reason="header_timeout") >= 20


async def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """A keep-alive connection that sends nothing after its request is closed after
    idle_timeout_seconds (1 s)."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url,
                         extra_env={"TOKENGATE_PROXY_IDLE_TIMEOUT_SECONDS": "1"})
    auth = workspace_auth(gp)
    reader, writer = await asyncio.open_connection(*address(gp.proxy))
    writer.write(f"GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
    head = await read_head(reader)
    assert head.status == 200 and "close" not in head.headers.get("Connection", "")
    await reader.readexactly(int(head.headers["Content-Length"]))
    assert await closed_by_server(reader, timeout=10)
    writer.close()


# --- bodies ----------------------------------------------------------------------


async def trickle_until_answered(reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> Head:
    """Send a body 1 byte every 0.5 s until the response head arrives (at most 60 bytes)."""
    response: asyncio.Task[Head] = asyncio.ensure_future(read_head(reader, timeout=30))
    sent = 0
    while not response.done() and sent < 60:  # bounded: 60 bytes, 30 s
        with contextlib.suppress(ConnectionError):
            writer.write(b"x")
        sent += 1
        await asyncio.wait([response], timeout=0.5)
    return await response


@BOTH_CLIENTS
async def test_trickled_body_is_cut_with_408_and_the_upstream_request_aborted(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """An authenticated upload sending 1 byte every 0.5 s (under 1 KiB/s) gets a 408 problem
    with Connection: close once body_timeout_seconds (1 s) is over; the upstream never gets
    a complete request."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url,
                         extra_env={"TOKENGATE_PROXY_BODY_TIMEOUT_SECONDS": "1"})
    auth = workspace_auth(gp)
    reader, writer = await asyncio.open_connection(*address(gp.proxy))
    writer.write(f"POST /trickle HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                 "Content-Length: 1000\r\n\r\n".encode())
    started = time.monotonic()
    head = await trickle_until_answered(reader, writer)
    assert head.status == 408 and head.headers["Connection"] == "close"
    assert head.headers["Content-Type"].startswith("application/problem+json")
    assert time.monotonic() - started < 20
    assert await closed_by_server(reader, timeout=10)
    writer.close()
    assert not any(seen.raw_path == "/trickle" for seen in upstream.seen)
    assert metric(gp, "tokengate_connections_closed_total", reason="body_timeout") == 1


@pytest.mark.parametrize(("path", "content_type"), [
    ("/api/rest/2.0/auth/token/full", "application/json"),
    ("/callosum/v1/tspublic/v1/session/auth/token", "application/x-www-form-urlencoded"),
])
async def test_trickled_token_request_body_is_cut_with_408(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream,
    path: str, content_type: str,
) -> None:
    """A public token request whose body trickles in (1 byte every 0.5 s) gets a 408 once
    body_timeout_seconds (1 s) is over, so it cannot hold an unevictable connection."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url,
                         extra_env={"TOKENGATE_PROXY_BODY_TIMEOUT_SECONDS": "1"})
    reader, writer = await asyncio.open_connection(*address(gp.proxy))
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                 "Content-Length: 500\r\n\r\n".encode())
    started = time.monotonic()
    head = await trickle_until_answered(reader, writer)
    assert head.status == 408 and head.headers["Connection"] == "close"
    assert time.monotonic() - started < 20
    assert await closed_by_server(reader, timeout=10)
    writer.close()


@BOTH_CLIENTS
async def test_unauthenticated_big_body_is_refused_unread_and_the_connection_closed(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """A request announcing a 1 GB body without credentials gets its 401 with Connection:
    close, and the server closes the connection while only 4 KiB have been sent."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    reader, writer = await asyncio.open_connection(*address(gp.proxy))
    writer.write(f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {GB}\r\n\r\n".encode()
                 + b"y" * 4096)
    head = await read_head(reader)
    assert head.status == 401 and head.headers["Connection"] == "close"
    await reader.readexactly(int(head.headers["Content-Length"]))
    # Without the fix aiohttp reads on, waiting for the rest of the body, for 10 s.
    assert await closed_by_server(reader, timeout=5)
    writer.close()
    assert upstream.seen == []


@BOTH_CLIENTS
async def test_client_that_stops_reading_does_not_hold_the_upstream_pool(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """With a pool of one upstream connection, a client that asks for 200 MB and never reads
    is cut after the upstream timeout (1 s), and a normal request gets through."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, extra_env={
        "TOKENGATE_UPSTREAM_MAX_CONNECTIONS": "1", "TOKENGATE_UPSTREAM_TIMEOUT_SECONDS": "1"})
    auth = workspace_auth(gp)
    reader, writer = await asyncio.open_connection(*address(gp.proxy), limit=1024)
    writer.transport.pause_reading()  # the kernel buffers fill, then the gateway must wait
    writer.write(f"GET /download/{200 * 1024 * 1024} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: {auth}\r\n\r\n".encode())
    for _ in range(100):  # bounded (~10 s): until the download holds the only upstream slot
        if any(seen.raw_path.startswith("/download/") for seen in upstream.seen):
            break
        await asyncio.sleep(0.1)
    status, _, _ = await get(gp.proxy + "/after", headers={"Authorization": auth},
                             timeout=aiohttp.ClientTimeout(total=20))
    assert status == 200
    writer.transport.resume_reading()
    assert await closed_by_server(reader, timeout=10)  # cut, not completed
    writer.close()


# --- Expect: 100-continue --------------------------------------------------------


@BOTH_CLIENTS
async def test_100_continue_comes_only_after_authentication(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """Without credentials the answer to Expect: 100-continue is the 401, not 100 Continue;
    with them 100 Continue comes first, and the upstream never sees Expect."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    auth = workspace_auth(gp)
    request = "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
    reader, writer = await asyncio.open_connection(*address(gp.proxy))
    writer.write(request.encode() + b"\r\n")
    head = await read_head(reader)
    assert head.status == 401 and head.headers["Connection"] == "close"
    writer.close()

    reader, writer = await asyncio.open_connection(*address(gp.proxy))
    writer.write(f"{request}Authorization: {auth}\r\n\r\n".encode())
    assert (await read_head(reader)).status == 100
    writer.write(b"hello")
    head = await read_head(reader)
    assert head.status == 200
    writer.close()
    seen = upstream.seen[-1]
    assert seen.body_bytes == 5
    assert "expect" not in {name.lower() for name, _ in seen.headers}


@BOTH_CLIENTS
async def test_other_expectations_are_417(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """An authenticated request with an Expect value other than 100-continue is a 417 problem
    and is not forwarded."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    auth = workspace_auth(gp)
    async with aiohttp.ClientSession() as s, s.post(gp.proxy + "/up", data=b"hello",
                      headers={"Authorization": auth, "Expect": "tea"}) as r:
        assert r.status == 417
        assert (await r.json(content_type=None))["title"] == "Expectation failed"
    assert upstream.seen == []


@dataclass
class BodyFirstUpstream:
    """An upstream that ignores Expect (as a server may), reads the whole body, then answers;
    on ``/stall`` it never answers at all."""

    url: str = ""
    expects: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            length = re.search(r"(?im)^content-length:\s*(\d+)", head)
            expect = re.search(r"(?im)^expect:\s*(\S+)", head)
            if expect:
                self.expects.append(expect.group(1))
            await reader.readexactly(int(length.group(1)) if length else 0)
            if head.split()[1] == "/stall":
                await reader.read()  # until the gateway gives up
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@BOTH_CLIENTS
async def test_expect_to_an_upstream_that_waits_for_the_body_never_hangs_the_pool(
    gateway_factory: GatewayFactory, redis_url: str
) -> None:
    """With a pool of 5 and an upstream that waits for the body, six Expect: 100-continue
    uploads to a path that never answers end in 504 within the upstream timeout (2 s), and
    neither they nor a normal request alongside them hang."""
    fake = BodyFirstUpstream()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        gp = gateway_factory(store_url=redis_url, upstream=fake.url, extra_env={
            "TOKENGATE_UPSTREAM_MAX_CONNECTIONS": "5", "TOKENGATE_UPSTREAM_TIMEOUT_SECONDS": "2"})
        auth = {"Authorization": workspace_auth(gp)}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:

            async def upload(path: str) -> int:
                async with s.post(gp.proxy + path, data=b"z" * 10000, headers=auth,
                                  expect100=True) as r:
                    await r.read()
                    return r.status

            async def normal() -> tuple[int, float]:
                await asyncio.sleep(0.2)  # once the uploads hold the pool
                started = time.monotonic()
                async with s.get(gp.proxy + "/ok", headers=auth) as r:
                    await r.read()
                    return r.status, time.monotonic() - started

            stalls = [upload("/stall") for _ in range(6)]
            *statuses, (ok_status, ok_wait), done = await asyncio.wait_for(
                asyncio.gather(*stalls, normal(), upload("/done")), 25)
        assert statuses == [504] * 6
        assert ok_status == 200 and done == 200
        # One upstream timeout for a pool slot to free up, one more of slack.
        assert ok_wait < 2 * 2 + 10
        assert fake.expects == []
    finally:
        server.close()
        await server.wait_closed()


# --- SIGTERM ----------------------------------------------------------------------


@BOTH_CLIENTS
async def test_sigterm_cuts_requests_past_the_grace_period(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """With lifecycle.grace_seconds = 4 and an upstream taking 30 s (timeout 60 s), SIGTERM
    lets the in-flight request run for the grace period, then cuts it, and the process
    exits 0 on time (aiohttp alone waits twice the grace period)."""
    grace = 4
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, extra_env={
        "TOKENGATE_LIFECYCLE_GRACE_SECONDS": str(grace),
        "TOKENGATE_UPSTREAM_TIMEOUT_SECONDS": "60"})
    auth = workspace_auth(gp)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:

        async def slow() -> int | None:
            try:
                async with s.get(gp.proxy + "/slow/30", headers={"Authorization": auth}) as r:
                    await r.read()
                    return r.status
            except aiohttp.ClientError:
                return None

        request = asyncio.ensure_future(slow())
        for _ in range(100):  # bounded: until the request is in flight (at most ~10 s)
            in_flight = await loop.run_in_executor(
                None, metric, gp, "tokengate_in_flight_requests")
            if in_flight == 1:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the slow request never reached the gateway")
        signalled = time.monotonic()
        gp.proc.send_signal(signal.SIGTERM)
        code = await loop.run_in_executor(None, gp.proc.wait, 25)
        took = time.monotonic() - signalled
        status = await asyncio.wait_for(request, 10)
    assert code == 0
    # The lower bound holds however busy the machine; the upper one has 3 s of
    # slack over the grace period, and aiohttp alone takes 2 x 4 s.
    assert grace - 0.5 <= took < grace + 3, f"exit took {took:.1f} s"
    assert status is None  # cut: no response
    assert "grace period over" in gp.logs()
