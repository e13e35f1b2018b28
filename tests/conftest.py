"""Shared fixtures: a real redis-server for the run, a fake clock."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_server(proc: subprocess.Popen[bytes], workdir: str) -> None:
    """Stop a server process the test run started, and remove its directory."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(workdir, ignore_errors=True)


class RedisServer:
    """A private redis-server process on a free port, for this test run only."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed; run scripts/test, which installs it")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tokengate-redis-")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        """Empty every database."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as c:
            c.sendall(b"FLUSHALL\r\n")
            c.recv(16)

    def stop(self) -> None:
        stop_server(self.proc, self.dir)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server started for this test run (never the machine's own)."""
    server = RedisServer()
    yield server
    server.stop()


class SentinelServer:
    """A redis-server in Sentinel mode watching the run's Redis as ``tokengate``."""

    SERVICE = "tokengate"

    def __init__(self, master: RedisServer) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tokengate-sentinel-")
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as fh:
            fh.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                     f"sentinel monitor {self.SERVICE} 127.0.0.1 {master.port} 1\n")
        self.proc = subprocess.Popen([exe, conf, "--sentinel"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"SENTINEL get-master-addr-by-name tokengate\r\n")
                    if str(master.port).encode() in c.recv(256):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis sentinel did not start")

    def url(self, dead_first: bool = False) -> str:
        """A redis+sentinel:// URL (optionally listing an unreachable sentinel first)."""
        hosts = f"127.0.0.1:{self.port}"
        if dead_first:
            hosts = f"127.0.0.1:{free_port()}," + hosts
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def stop(self) -> None:
        stop_server(self.proc, self.dir)


@pytest.fixture(scope="session")
def sentinel_server(redis_server: RedisServer) -> Iterator[SentinelServer]:
    """Redis Sentinel for the run, naming the run's Redis as master ``tokengate``."""
    server = SentinelServer(redis_server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[object]:
    """A three-primary Redis Cluster started for this test run (tests/store/cluster.py)."""
    from tests.store.cluster import ClusterProcesses

    cluster = ClusterProcesses(primaries=3)
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: object) -> str:
    """A redis+cluster:// URL of the run's cluster, emptied before each test."""
    redis_cluster.flush()  # type: ignore[attr-defined]
    return redis_cluster.url()  # type: ignore[attr-defined]


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the run's Redis, emptied before each test."""
    redis_server.flush()
    return redis_server.url


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock, injected wherever the code reads time."""
    return FakeClock()


# --- a real gateway process and a recording upstream -------------------------

import base64 as _b64
import json as _json
import signal as _signal
import sys as _sys
import urllib.request as _urlreq
from dataclasses import dataclass as _dataclass
from pathlib import Path as _Path

from gateway.keys import generate_master_key

# A strong key (openssl rand -hex 24): serve refuses short or guessable ones.
ADMIN_KEY = "7a76502e9632acf9fa0c054284058f229eac8602a053d840"


@_dataclass
class GatewayProcess:
    """A ``tokengate serve`` subprocess on free ports."""

    proc: subprocess.Popen[bytes]
    proxy: str
    admin: str
    log_path: _Path
    env: dict[str, str]

    def admin_call(self, method: str, path: str, body: object | None = None,
                   actor: str | None = None) -> tuple[int, dict]:
        """Call the admin API with the admin key (synchronously)."""
        data = None if body is None else _json.dumps(body).encode()
        req = _urlreq.Request(self.admin + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {ADMIN_KEY}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if actor is not None:
            req.add_header("X-Tokengate-Actor", actor)
        try:
            with _urlreq.urlopen(req, timeout=10) as resp:
                return resp.status, _json.loads(resp.read() or b"{}")
        except _urlreq.HTTPError as err:
            return err.code, _json.loads(err.read() or b"{}")

    def logs(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = _signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the process and wait for its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def basic(token: str, secret: str) -> str:
    """An Authorization header value for Basic credentials."""
    return "Basic " + _b64.b64encode(f"{token}:{secret}".encode()).decode()


def start_gateway(tmp_path: _Path, *, store_url: str, upstream: str,
                  master_key: str | None = None, extra_env: dict[str, str] | None = None,
                  config_text: str | None = None, args: list[str] | None = None) -> GatewayProcess:
    """Start ``python -m gateway serve`` and wait until /healthz answers."""
    proxy_port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
    env.update({
        "TOKENGATE_MASTER_KEY": master_key or generate_master_key(),
        "TOKENGATE_ADMIN_KEY": ADMIN_KEY,
        "TOKENGATE_LOG_LEVEL": "info",
    })
    env.update(extra_env or {})
    cmd = [_sys.executable, "-m", "gateway", "serve",
           "--listen", f"127.0.0.1:{proxy_port}", "--admin-listen", f"127.0.0.1:{admin_port}",
           "--upstream", upstream, "--store", store_url, *(args or [])]
    if config_text is not None:
        cfg = tmp_path / f"tokengate-{proxy_port}.toml"
        cfg.write_text(config_text)
        cmd += ["--config", str(cfg)]
    log_path = tmp_path / f"gateway-{proxy_port}.log"
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    gp = GatewayProcess(proc, f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{admin_port}",
                        log_path, env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{gp.logs()}")
        try:
            with _urlreq.urlopen(gp.admin + "/healthz", timeout=1):
                return gp
        except OSError:
            time.sleep(0.05)
    gp.stop()
    raise RuntimeError(f"gateway did not start:\n{gp.logs()}")


UPSTREAM_CLIENTS = ("lean", "aiohttp")
BOTH_CLIENTS = pytest.mark.parametrize("upstream_client", UPSTREAM_CLIENTS)
"""Mark a test that forwards to run against both upstream clients (``upstream.client``)."""


@pytest.fixture
def upstream_client() -> str:
    """The upstream client gateways are built with (``BOTH_CLIENTS`` runs a test with each)."""
    return "lean"


@pytest.fixture
def gateway_factory(tmp_path: _Path,
                    upstream_client: str) -> Iterator[Callable[..., GatewayProcess]]:
    """Start real gateway processes; all are stopped after the test."""
    started: list[GatewayProcess] = []

    def make(**kw: object) -> GatewayProcess:
        env = {"TOKENGATE_UPSTREAM_CLIENT": upstream_client,
               **(kw.pop("extra_env", None) or {})}  # type: ignore[dict-item]
        gp = start_gateway(tmp_path, extra_env=env, **kw)  # type: ignore[arg-type]
        started.append(gp)
        return gp

    yield make
    for gp in started:
        gp.stop()


# --- a recording upstream ------------------------------------------------------

from aiohttp import web as _web


@_dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body_bytes: int


class RecordingUpstream:
    """A real aiohttp upstream that records what reaches it and echoes it as JSON."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.url = ""

    async def handle(self, request: _web.Request) -> _web.StreamResponse:
        if request.path.startswith("/download/"):
            return await self.download(request, int(request.path.rsplit("/", 1)[1]))
        if request.path.startswith("/slow/"):
            import asyncio as _asyncio

            await _asyncio.sleep(float(request.path.rsplit("/", 1)[1]))
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        seen = Seen(request.method, request.raw_path, list(request.headers.items()), size)
        self.seen.append(seen)
        return _web.json_response({
            "method": seen.method, "path": seen.raw_path,
            "headers": dict(request.headers), "body_bytes": size,
        })

    async def download(self, request: _web.Request, size: int) -> _web.StreamResponse:
        """Stream ``size`` bytes without holding them (for the big-body tests)."""
        self.seen.append(Seen(request.method, request.raw_path, list(request.headers.items()), 0))
        response = _web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                                "Connection": "close, X-Hop",
                                                "X-Hop": "should-not-pass",
                                                "Keep-Alive": "timeout=5",
                                                "X-Upstream": "yes"})
        response.content_length = size
        await response.prepare(request)
        chunk = b"x" * (1024 * 1024)
        sent = 0
        while sent < size:
            n = min(len(chunk), size - sent)
            await response.write(chunk[:n])
            sent += n
        await response.write_eof()
        return response

    def app(self) -> _web.Application:
        app = _web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., object]) -> RecordingUpstream:
    """A recording upstream on a real TCP port."""
    rec = RecordingUpstream()
    server = await aiohttp_server(rec.app())  # type: ignore[misc]
    rec.url = f"http://127.0.0.1:{server.port}"  # type: ignore[attr-defined]
    return rec


# --- an in-process gateway on real TCP ---------------------------------------


@_dataclass
class InProcess:
    """A Gateway with both listeners served by aiohttp test servers (real sockets)."""

    gw: object
    proxy: str
    admin: str
    token: str
    secret: str


@pytest.fixture
async def make_gateway(aiohttp_server, upstream: RecordingUpstream, redis_url: str,  # type: ignore[no-untyped-def]
                       upstream_client: str):
    """Build in-process gateways on the run's Redis in front of the recording upstream."""
    from gateway.admin.app import build_admin_app
    from gateway.config import load_settings
    from gateway.keys import Keys
    from gateway.policy.errors import Conflict
    from gateway.policy.model import Role, TokenType
    from gateway.policy.permissions import Actor
    from gateway.proxy.app import build_proxy_app
    from gateway.runtime import Gateway
    from gateway.store import open_store

    made = []

    async def make(overrides: dict | None = None, store_url: str | None = None) -> InProcess:
        base = {"upstream": {"url": upstream.url, "client": upstream_client},
                "store": {"url": store_url or redis_url},
                "admin": {"key": ADMIN_KEY}, "log": {"access": False}}
        for k, v in (overrides or {}).items():
            base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
        settings = load_settings(environ={}, overrides=base)
        store = open_store(settings.store.url, prefix=settings.store.prefix,
                           timeout=settings.store.timeout_seconds)
        gw = Gateway(settings, Keys.from_master(b"k" * 32), store)
        await gw.start()
        made.append(gw)
        op = Actor.operator()
        with contextlib.suppress(Conflict):  # a second gateway on the same store
            await gw.lifecycle.add_user(op, "root", Role.ADMIN, None)
        new = await gw.lifecycle.create_token(op, TokenType.WORKSPACE, "test token")
        proxy = await aiohttp_server(build_proxy_app(gw))
        admin = await aiohttp_server(build_admin_app(gw))
        return InProcess(gw, f"http://127.0.0.1:{proxy.port}", f"http://127.0.0.1:{admin.port}",
                         new.record.token, new.secret)

    yield make
    for gw in made:
        await gw.stop()  # type: ignore[attr-defined]
