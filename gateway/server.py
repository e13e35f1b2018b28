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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.admin.app import build_admin_app
from gateway.config import ConfigError, load_settings, parse_listen
from gateway.proxy.app import build_proxy_app
from gateway.runtime import Gateway

log = logging.getLogger("tokengate")


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

    proxy: web.AppRunner
    admin: web.AppRunner
    proxy_address: tuple[str, int]
    admin_address: tuple[str, int]


def bound_address(runner: web.AppRunner) -> tuple[str, int]:
    """The address a runner's (first) site actually listens on (port 0 resolved)."""
    site = next(iter(runner.sites))
    server: Any = site._server
    addr = server.sockets[0].getsockname()
    return str(addr[0]), int(addr[1])


async def start_listeners(gw: Gateway, *, reuse_port: bool = False) -> Listeners:
    """Start the gateway and bind the proxy and admin listeners."""
    await gw.start()
    grace = gw.settings.lifecycle.grace_seconds
    runners: list[web.AppRunner] = []
    for app, listen in (
        (build_proxy_app(gw), gw.settings.proxy.listen),
        (build_admin_app(gw), gw.settings.admin.listen),
    ):
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=grace,
                               handle_signals=False)
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
    return Listeners(runners[0], runners[1], bound_address(runners[0]), bound_address(runners[1]))


async def stop_listeners(gw: Gateway, listeners: Listeners) -> None:
    """Drain: readiness off, stop accepting, finish in-flight requests, then close."""
    gw.draining = True
    # aiohttp's cleanup stops the listening sockets first, then waits up to
    # shutdown_timeout for in-flight handlers before closing connections.
    await listeners.proxy.cleanup()
    await listeners.admin.cleanup()
    await gw.stop()


async def serve_until_signalled(
    gw: Gateway,
    *,
    config_path: str | None,
    overrides: dict[str, object],
    reuse_port: bool = False,
    on_ready: Callable[[Listeners], Awaitable[None] | None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads rules and rate-limit classes."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    listeners = await start_listeners(gw, reuse_port=reuse_port)

    def reload() -> None:
        try:
            settings = load_settings(config_path, overrides=overrides)
            gw.reload(settings)
        except (ConfigError, ValueError) as exc:
            log.error("config reload rejected; keeping the old config: %s", exc)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info("tokengate listening", extra={
        "proxy": "{}:{}".format(*listeners.proxy_address),
        "admin": "{}:{}".format(*listeners.admin_address),
        "upstream": gw.settings.upstream.url, "pid": os.getpid()})
    if on_ready is not None:
        result = on_ready(listeners)
        if asyncio.iscoroutine(result):
            await result
    await stop.wait()
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
    return 0


def run_workers(workers: int, child: Callable[[], int]) -> int:
    """Fork ``workers`` processes sharing the ports (SO_REUSEPORT); supervise them.

    Metrics of all workers are aggregated with prometheus-client's
    multiprocess mode, in a fresh directory for this run.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        print("error: --workers needs SO_REUSEPORT (Linux)", file=sys.stderr)
        return 2
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="tokengate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    pids: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                code = child()
            finally:
                os._exit(code)
        pids.append(pid)

    def forward(sig: int, _frame: object) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = 0
    from gateway.metrics import worker_exited

    for pid in pids:
        while True:
            try:
                _, code = os.waitpid(pid, 0)
                break
            except InterruptedError:  # pragma: no cover
                continue
        worker_exited(pid)
        status = status or os.waitstatus_to_exitcode(code)
    return status


