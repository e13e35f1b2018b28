"""``tokengate demo``: the gateway on its embedded default, in one process.

Memory store, an ephemeral master key, a built-in echo upstream, one admin
user and one workspace token; it prints a ready ``curl`` line.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket

from aiohttp import web

from gateway.config import load_settings, parse_listen
from gateway.keys import Keys
from gateway.policy.model import Role, TokenType
from gateway.policy.permissions import Actor
from gateway.runtime import Gateway
from gateway.server import Listeners, bound_address, install_uvloop, serve_until_signalled
from gateway.store.memory import MemoryStore


async def echo(request: web.Request) -> web.Response:
    """Answer with the request line and headers received, as JSON."""
    body = await request.read()
    return web.json_response({
        "method": request.method,
        "path": request.raw_path,
        "headers": dict(request.headers),
        "body_bytes": len(body),
    })


async def start_echo_upstream(host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """A tiny upstream that echoes requests, on a free local port."""
    app = web.Application(client_max_size=0)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, bound_address(runner)[1]


def _free_or(listen: str) -> str:
    """``listen`` if its port is free, else the same host on a free port."""
    host, port = parse_listen(listen)
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return listen
        except OSError:
            s.bind((host, 0))
            return f"{host}:{s.getsockname()[1]}"


def run_demo(listen: str, admin_listen: str) -> int:
    """Run the demo until Ctrl-C."""
    install_uvloop()
    return asyncio.run(_demo(_free_or(listen), _free_or(admin_listen)))


async def _demo(listen: str, admin_listen: str) -> int:
    upstream, upstream_port = await start_echo_upstream()
    admin_key = secrets.token_urlsafe(24)
    overrides = {
        "proxy": {"listen": listen},
        "admin": {"listen": admin_listen, "key": admin_key},
        "upstream": {"url": f"http://127.0.0.1:{upstream_port}"},
        "store": {"url": "memory://"},
        "log": {"format": "text", "access": False},
    }
    settings = load_settings(environ={}, overrides=overrides)
    keys = Keys.from_master(secrets.token_bytes(32))  # ephemeral: nothing outlives the demo
    gw = Gateway(settings, keys, MemoryStore())
    op = Actor.operator()
    await gw.lifecycle.add_user(op, "demo-admin", Role.ADMIN, None)
    new = await gw.lifecycle.create_token(op, TokenType.WORKSPACE, "demo token")

    def ready(listeners: Listeners) -> None:
        host, port = listeners.proxy_address
        ahost, aport = listeners.admin_address
        basic = base64.b64encode(f"{new.record.token}:{new.secret}".encode()).decode()
        print(f"""
tokengate demo is running (memory store, echo upstream on 127.0.0.1:{upstream_port}).

  proxy:  http://{host}:{port}
  admin:  http://{ahost}:{aport}/admin/   (admin key: {admin_key})
  token:  {new.record.token}
  secret: {new.secret}

Try it:
  curl -u {new.record.token}:{new.secret} http://{host}:{port}/api/default/reports
  curl -H 'Authorization: Basic {basic}' http://{host}:{port}/hello
  curl -H 'Authorization: Bearer {admin_key}' http://{ahost}:{aport}/admin/api/tokens

Press Ctrl-C to stop.""", flush=True)

    try:
        return await serve_until_signalled(
            gw, config_path=None, overrides=overrides, on_ready=ready)
    finally:
        await upstream.cleanup()
