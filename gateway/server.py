"""Run the two listeners: start-up, signals, graceful drain, worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.admin.app import build_admin_app
from gateway.config import ConfigError, Settings, load_settings, parse_listen
from gateway.keycheck import check_master_key
from gateway.keys import MasterKeyError
from gateway.proxy.app import build_proxy_app
from gateway.proxy.connections import (
    ConnectionGuard,
    GuardedRunner,
    connection_cap,
    raise_file_limit,
)
from gateway.runtime import Gateway
from gateway.store.base import StoreError

log = logging.getLogger("tokengate")
WORKER_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
# A process that exits with this found a setting a restart cannot fix.
EXIT_USAGE = 2
KEY_CHECK_RETRY_SECONDS = 1.0


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse a worker count the settings cannot serve (ConfigError)."""
    if workers < 1:
        raise ConfigError("--workers: must be at least 1")
    if workers > 1 and settings.store.url.startswith("memory:"):
        raise ConfigError(
            f"--workers {workers} with store memory://: each worker would hold its own "
            "users and tokens; use a redis:// store, or one worker")


def install_uvloop() -> None:
    """Use uvloop where it is installed (faster event loop)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on some platforms
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@dataclass
class Listeners:
    """The bound runners and their actual addresses."""

    proxy: GuardedRunner
    admin: web.AppRunner
    proxy_address: tuple[str, int]
    admin_address: tuple[str, int]


def bound_address(runner: web.AppRunner) -> tuple[str, int]:
    """The address a runner's (first) site actually listens on (port 0 resolved)."""
    site = next(iter(runner.sites))
    server: Any = site._server
    addr = server.sockets[0].getsockname()
    return str(addr[0]), int(addr[1])


def proxy_guard(gw: Gateway) -> ConnectionGuard:
    """The proxy listener's connection guard, its cap kept below the file limit."""
    settings = gw.settings
    file_limit = raise_file_limit()
    cap = connection_cap(settings.proxy.max_connections, file_limit=file_limit,
                         upstream_pool=settings.upstream.max_connections)
    log.info("proxy connection cap", extra={
        "max_connections": cap, "configured": settings.proxy.max_connections,
        "file_limit": file_limit})
    return ConnectionGuard(cap=cap, header_timeout=settings.proxy.header_timeout_seconds,
                           closed_total=gw.metrics.connections_closed)


async def start_listeners(gw: Gateway, *, reuse_port: bool = False) -> Listeners:
    """Start the gateway and bind the proxy and admin listeners."""
    await gw.start()
    grace = gw.settings.lifecycle.grace_seconds
    proxy = GuardedRunner(build_proxy_app(gw), guard=proxy_guard(gw), access_log=None,
                          shutdown_timeout=grace, handle_signals=False)
    admin = web.AppRunner(build_admin_app(gw), access_log=None, shutdown_timeout=grace,
                          handle_signals=False)
    runners: list[web.AppRunner] = []
    for runner, listen in ((proxy, gw.settings.proxy.listen), (admin, gw.settings.admin.listen)):
        await runner.setup()
        host, port = parse_listen(listen)
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None,
                           shutdown_timeout=grace)
        try:
            await site.start()
        except OSError as exc:
            for r in runners:
                await r.cleanup()
            await runner.cleanup()
            await gw.stop()
            raise ConfigError(f"cannot listen on {listen}: {exc.strerror}") from None
        runners.append(runner)
    return Listeners(proxy, admin, bound_address(proxy), bound_address(admin))


async def stop_listeners(gw: Gateway, listeners: Listeners) -> None:
    """Drain: readiness off, stop accepting, let in-flight requests finish, cut them at grace."""
    gw.draining = True
    grace = gw.settings.lifecycle.grace_seconds
    # aiohttp's cleanup stops the listening socket, closes idle connections
    # and waits up to shutdown_timeout for in-flight handlers - then cancels
    # them and waits as long again. At the end of the grace period the
    # proxy's remaining requests are cut instead, so the process exits on
    # time whatever the upstream's timeout. The admin listener answers
    # /readyz (503) until the proxy is done.
    proxy = asyncio.ensure_future(listeners.proxy.cleanup())
    done, _ = await asyncio.wait({proxy}, timeout=grace)
    if not done:
        cut = listeners.proxy.guard.cut()
        log.warning("grace period over; cut requests still in flight",
                    extra={"connections": cut, "grace_seconds": grace})
    await proxy
    await listeners.admin.cleanup()
    await gw.stop()


async def serve_until_signalled(
    gw: Gateway,
    *,
    config_path: str | None,
    overrides: dict[str, object],
    reuse_port: bool = False,
    on_ready: Callable[[Listeners], Awaitable[None] | None] | None = None,
    check_key: bool = False,
) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads rules and rate-limit classes.

    With ``check_key`` (the store was unreachable when ``serve`` checked the
    master key) the key is checked once the store answers; a different key
    stops the process with exit status 2.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    status = 0
    listeners = await start_listeners(gw, reuse_port=reuse_port)

    async def check_key_when_reachable() -> None:
        nonlocal status
        while True:
            try:
                await check_master_key(gw.store, gw.keys)
                log.info("master key checked")
                return
            except StoreError:
                await asyncio.sleep(KEY_CHECK_RETRY_SECONDS)
            except MasterKeyError as exc:
                log.error("stopping: %s", exc)
                status = EXIT_USAGE
                stop.set()
                return

    key_task = asyncio.ensure_future(check_key_when_reachable()) if check_key else None

    def reload() -> None:
        try:
            settings = load_settings(config_path, overrides=overrides)
            gw.reload(settings)
        except (ConfigError, ValueError) as exc:
            log.error("config reload rejected; keeping the old config: %s", exc)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    # A worker starts with these blocked (see run_workers); now they have handlers.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
    log.info("tokengate listening", extra={
        "proxy": "{}:{}".format(*listeners.proxy_address),
        "admin": "{}:{}".format(*listeners.admin_address),
        "upstream": gw.settings.upstream.url, "pid": os.getpid()})
    if on_ready is not None:
        result = on_ready(listeners)
        if asyncio.iscoroutine(result):
            await result
    await stop.wait()
    if key_task is not None:
        key_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await key_task
    if reuse_port:
        # A worker: the supervisor owns shutdown. Once draining, a repeated
        # signal must not kill the process half-way through its exit.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
    log.info("draining", extra={"grace_seconds": gw.settings.lifecycle.grace_seconds})
    gw.draining = True
    await stop_listeners(gw, listeners)
    log.info("stopped")
    return status


def run_workers(workers: int, child: Callable[[], int]) -> int:
    """Fork ``workers`` processes sharing the ports (SO_REUSEPORT); supervise them.

    A worker that dies while the gateway is not shutting down is replaced
    (at most once a second), so one crash never leaves the port short of
    workers, unless it exits with status 2 (a setting no restart fixes, such
    as a master key the store refuses): then every worker is stopped and the
    parent exits 2. SIGTERM/SIGINT are passed on and the parent exits once
    every worker has drained; SIGHUP is passed on for a reload. Metrics of all
    workers are aggregated with prometheus-client's multiprocess mode, in a
    fresh directory for this run.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        print("error: --workers needs SO_REUSEPORT (Linux)", file=sys.stderr)
        return 2
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="tokengate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from gateway.metrics import worker_exited

    def spawn() -> int:
        # Signals stay blocked from the fork until the worker's event loop has
        # its handlers (serve_until_signalled unblocks them): a SIGTERM that
        # arrives while a worker starts is delivered then, not lost or fatal.
        signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    for sig in WORKER_SIGNALS:
                        signal.signal(sig, signal.SIG_DFL)
                    code = child()
                finally:
                    from gateway.logs import flush_access_log

                    flush_access_log()  # os._exit skips atexit
                    os._exit(code)
            pids.add(pid)
            return pid
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)

    pids: set[int] = set()
    stopping = False

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig != signal.SIGHUP:
            stopping = True
        for pid in list(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    for sig in WORKER_SIGNALS:
        signal.signal(sig, forward)
    for _ in range(workers):
        spawn()
    status = 0
    last_spawn = 0.0
    while pids:
        try:
            pid, code = os.wait()
        except ChildProcessError:  # pragma: no cover - nothing left to wait for
            break
        if pid not in pids:
            continue
        pids.discard(pid)
        worker_exited(pid)
        exit_code = os.waitstatus_to_exitcode(code)
        if stopping:
            status = status or exit_code
            continue
        if exit_code == EXIT_USAGE:
            log.error("worker refused its settings; stopping every worker",
                      extra={"pid": pid, "exit_code": exit_code})
            status = EXIT_USAGE
            forward(signal.SIGTERM, None)
            continue
        log.error("worker exited unexpectedly; starting a new one",
                  extra={"pid": pid, "exit_code": exit_code})
        wait = 1.0 - (time.monotonic() - last_spawn)
        if wait > 0:
            time.sleep(wait)  # a worker that dies at start-up must not fork-bomb
        last_spawn = time.monotonic()
        if not stopping:
            spawn()
    return status


