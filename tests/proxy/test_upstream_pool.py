"""The lean client's pool and transports: closes, restarts, the cap, idle eviction, unix, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import ipaddress
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.proxy.pool import Pool
from tests.conftest import BOTH_CLIENTS, InProcess, basic
from tests.proxy.rawupstream import RawUpstream, Received, Reply, until
from tests.rules.support import MakeGateway

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def pool_of(g: InProcess) -> Pool:
    """The lean client's pool inside an in-process gateway."""
    pool = g.gw.forwarder.client.pool  # type: ignore[attr-defined]
    assert isinstance(pool, Pool)
    return pool


async def call(s: aiohttp.ClientSession, g: InProcess, method: str, path: str) -> int:
    """One request through the gateway; its status (0 when the connection broke)."""
    try:
        async with s.request(method, g.proxy + path, data=b"x" if method == "POST" else None,
                             headers={"Authorization": basic(g.token, g.secret)}) as r:
            await r.read()
            return r.status
    except aiohttp.ClientError:
        return 0


async def test_upstream_closing_idle_connections_costs_no_request(
    make_gateway: MakeGateway
) -> None:
    """An upstream that closes each connection after answering (without saying so): every
    next request still succeeds, on a new connection, and reaches the upstream once."""
    raw = await RawUpstream(lambda seen: Reply(OK, close=True)).start()
    try:
        g = await make_gateway({"upstream": {"url": raw.url}})
        async with aiohttp.ClientSession() as s:
            for i in range(5):
                assert await call(s, g, "GET", f"/r/{i}") == 200
        assert [r.target for r in raw.received] == [f"/r/{i}" for i in range(5)]
        assert raw.connections == 5
    finally:
        await raw.stop()


@pytest.mark.parametrize(("method", "status", "sent"), [
    ("GET", 200, 2),   # idempotent: sent once more, on a new connection
    ("POST", 502, 1),  # not: the upstream may have acted on it
])
async def test_a_pooled_connection_closed_before_answering_is_retried_only_when_safe(
    make_gateway: MakeGateway, method: str, status: int, sent: int
) -> None:
    """The upstream takes the second request on a kept-alive connection and closes
    without a byte of answer: a GET is retried once on a new connection, a POST is a 502."""

    def answer(seen: Received) -> Reply | None:
        on_conn = [r for r in raw.received if r.conn == seen.conn]
        return None if seen.target == "/victim" and len(on_conn) == 2 else Reply(OK)

    raw = await RawUpstream(answer).start()
    try:
        g = await make_gateway({"upstream": {"url": raw.url}})
        async with aiohttp.ClientSession() as s:
            assert await call(s, g, "GET", "/warm") == 200
            assert await call(s, g, method, "/victim") == status
        assert [r.target for r in raw.received].count("/victim") == sent
    finally:
        await raw.stop()


async def test_a_new_connection_closed_before_answering_is_not_retried(
    make_gateway: MakeGateway
) -> None:
    """On a connection made for it, an unanswered GET is a 502: nothing says it was unseen."""
    raw = await RawUpstream(lambda seen: None).start()
    try:
        g = await make_gateway({"upstream": {"url": raw.url}})
        async with aiohttp.ClientSession() as s:
            assert await call(s, g, "GET", "/once") == 502
        assert len(raw.received) == 1
    finally:
        await raw.stop()


async def test_upstream_restart_under_load_sends_nothing_twice_and_never_hangs(
    make_gateway: MakeGateway
) -> None:
    """8 clients send GETs and POSTs while the upstream is killed and started again on the
    same port: every request ends (200 or 502), no POST reaches the upstream twice, and
    requests succeed again after the restart."""
    received: list[Received] = []
    first = RawUpstream(lambda seen: Reply(OK), received=received)
    await first.start()
    port = first.port
    g = await make_gateway({"upstream": {"url": first.url, "max_connections": 16},
                            "rate_limit": {"limit": 100000}})
    statuses: Counter[int] = Counter()
    after_restart: list[int] = []
    restarted = asyncio.Event()

    async def client(n: int) -> None:
        async with aiohttp.ClientSession() as s:
            for i in range(40):
                method = "POST" if i % 2 else "GET"
                status = await call(s, g, method, f"/{method}/{n}/{i}")
                statuses[status] += 1
                if restarted.is_set():
                    after_restart.append(status)

    second = RawUpstream(lambda seen: Reply(OK), received=received)
    try:
        load = asyncio.gather(*(client(n) for n in range(8)))
        assert await until(lambda: len(received) >= 60)
        await first.stop()
        await second.start(port)
        restarted.set()
        await asyncio.wait_for(load, 60)
    finally:
        await first.stop()
        await second.stop()
    assert set(statuses) <= {200, 502}, statuses
    assert 200 in after_restart
    posts = Counter(r.target for r in received if r.method == "POST")
    assert posts and max(posts.values()) == 1


async def test_max_connections_is_a_cap(make_gateway: MakeGateway) -> None:
    """With upstream.max_connections = 3, twelve concurrent requests use at most three
    upstream connections: nine wait for one, and all succeed once the upstream answers."""
    release = asyncio.Event()

    async def answer(seen: Received) -> Reply:
        await release.wait()
        return Reply(OK)

    raw = await RawUpstream(answer).start()
    try:
        g = await make_gateway({"upstream": {"url": raw.url, "max_connections": 3}})
        pool = pool_of(g)
        async with aiohttp.ClientSession() as s:
            load = asyncio.gather(*(call(s, g, "GET", f"/c/{i}") for i in range(12)))
            assert await until(lambda: len(raw.received) == 3 and pool.waiting == 9)
            assert pool.open == 3
            release.set()
            assert await asyncio.wait_for(load, 30) == [200] * 12
        assert raw.most_open <= 3 and raw.connections <= 3
    finally:
        release.set()
        await raw.stop()


async def test_idle_connections_are_closed_after_the_idle_timeout(
    make_gateway: MakeGateway
) -> None:
    """A pooled connection unused for upstream.idle_timeout_seconds is closed by the gateway."""
    raw = await RawUpstream(lambda seen: Reply(OK)).start()
    try:
        g = await make_gateway({"upstream": {"url": raw.url, "idle_timeout_seconds": 0.2}})
        pool = pool_of(g)
        async with aiohttp.ClientSession() as s:
            assert await call(s, g, "GET", "/once") == 200
        assert await until(lambda: raw.closed_by_gateway == [1])
        assert (pool.idle, pool.open) == (0, 0)
    finally:
        await raw.stop()


async def echo(request: web.Request) -> web.Response:
    """What reached the upstream, as JSON."""
    return web.json_response({"path": request.raw_path, "host": request.host,
                              "body": len(await request.read())})


@pytest.fixture
async def unix_upstream(tmp_path: Path) -> AsyncIterator[str]:
    """An aiohttp app listening on a unix socket; its ``unix:`` URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "app.sock"
    await web.UnixSite(runner, str(path)).start()
    yield f"unix:{path}"
    await runner.cleanup()


@BOTH_CLIENTS
async def test_unix_socket_upstream(make_gateway: MakeGateway, unix_upstream: str) -> None:
    """upstream.url = unix:/path forwards over the socket, target and body intact."""
    g = await make_gateway({"upstream": {"url": unix_upstream}})
    async with aiohttp.ClientSession() as s, s.post(
            g.proxy + "/api/default/x?y=1", data=b"12345",
            headers={"Authorization": basic(g.token, g.secret)}) as r:
        assert r.status == 200
        assert await r.json() == {"path": "/api/default/x?y=1", "host": "localhost", "body": 5}


def mint(tmp_path: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA (its PEM file) and a server context with a leaf for ``name``."""
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
             signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(name))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokengate test CA")])
    ca = cert("tokengate test CA", ca_key, ca_name, ca_key, True)
    leaf = cert(name, leaf_key, ca_name, ca_key, False)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "leaf.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(chain)
    return ca_file, server


@pytest.fixture
async def tls_upstream(tmp_path: Path, aiohttp_server) -> tuple[str, Path, Path]:  # type: ignore[no-untyped-def]
    """An https upstream on 127.0.0.1 (certificate for that address), its CA, another CA."""
    ca_file, context = mint(tmp_path, "127.0.0.1")
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = mint(other, "127.0.0.1")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = await aiohttp_server(app, ssl=context)
    return f"https://127.0.0.1:{server.port}", ca_file, other_ca


@BOTH_CLIENTS
async def test_https_upstream_is_verified_against_its_ca(
    make_gateway: MakeGateway, tls_upstream: tuple[str, Path, Path]
) -> None:
    """With upstream.ca_file naming the upstream's CA the request passes over TLS; with
    another CA (or the system's) the certificate is refused: 502, nothing forwarded."""
    url, ca_file, other_ca = tls_upstream
    trusted = await make_gateway({"upstream": {"url": url, "ca_file": str(ca_file)}})
    wrong = await make_gateway({"upstream": {"url": url, "ca_file": str(other_ca)}})
    system = await make_gateway({"upstream": {"url": url}})
    async with aiohttp.ClientSession() as s:
        assert await call(s, trusted, "GET", "/over/tls") == 200
        assert await call(s, wrong, "GET", "/over/tls") == 502
        assert await call(s, system, "GET", "/over/tls") == 502


async def test_an_answer_before_the_body_ends_is_relayed_and_its_connection_dropped(
    make_gateway: MakeGateway
) -> None:
    """An upstream that answers 413 as soon as it has the head of a 4 MiB upload: the
    gateway stops sending, relays the 413 (or the client sees its upload cut), and never
    reuses the connection, whose parser is still inside the body."""
    conns: list[asyncio.StreamReader] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(reader)
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"POST"):
            writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
        else:
            writer.write(OK)
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):  # whatever else comes, until the gateway closes
                pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        g = await make_gateway({"upstream": {"url": url}})
        auth = {"Authorization": basic(g.token, g.secret)}
        async with aiohttp.ClientSession() as s:
            try:
                async with s.post(g.proxy + "/upload", data=io.BytesIO(b"u" * (4 << 20)),
                                  headers=auth) as r:
                    assert r.status == 413
            except aiohttp.ClientError:
                pass  # the gateway closed the client connection mid-upload: also fine
            assert await call(s, g, "GET", "/after") == 200
        assert len(conns) == 2  # the GET needed a new connection
        assert await until(lambda: conns[0].at_eof())  # the first was closed by the gateway
    finally:
        server.close()
        await server.wait_closed()
