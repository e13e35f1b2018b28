"""Helpers for the admin-API tests: an async client for a real gateway process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.config import load_settings
from gateway.keys import Keys
from gateway.lifecycle import Lifecycle
from gateway.store import open_store
from tests.conftest import ADMIN_KEY, GatewayProcess, RecordingUpstream, basic

API = "/admin/api"
TOKEN_FIELDS = {
    "token", "type", "name", "owner", "workspace", "created_by", "created_at",
    "last_used_at", "expires_at", "revoked_at", "status", "expires_in_days",
    "scopes", "allowed_networks", "rate_limit", "rolled_at", "previous_secret_expires_at",
}
NO_BODY: Any = object()


@dataclass
class Reply:
    """One HTTP response: status, parsed JSON body, headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def detail(self) -> str:
        """The problem detail of an error response."""
        return str(self.body.get("detail", "")) if isinstance(self.body, dict) else ""


class Gw:
    """A running gateway with its upstream, called over real HTTP."""

    def __init__(self, gp: GatewayProcess, upstream: RecordingUpstream,
                 session: aiohttp.ClientSession, redis_url: str) -> None:
        self.gp = gp
        self.upstream = upstream
        self.session = session
        self.redis_url = redis_url

    async def call(self, method: str, path: str, body: Any = NO_BODY, *,
                   actor: str | None = None, raw: bytes | None = None,
                   headers: dict[str, str] | None = None, admin_key: str | None = ADMIN_KEY,
                   ) -> Reply:
        """Call the admin API (``path`` relative to /admin/api) with the admin key."""
        hdrs: dict[str, str] = {}
        if admin_key is not None:
            hdrs["Authorization"] = f"Bearer {admin_key}"
        if actor is not None:
            hdrs["X-Tokengate-Actor"] = actor
        data: bytes | None = raw
        if body is not NO_BODY:
            import json

            data = json.dumps(body).encode()
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        async with self.session.request(method, self.gp.admin + API + path, data=data,
                                        headers=hdrs) as resp:
            return await _reply(resp)

    async def ok(self, method: str, path: str, body: Any = NO_BODY, *,
                 actor: str | None = None, status: int = 200) -> Any:
        """Call the admin API and insist on ``status``; the JSON body."""
        reply = await self.call(method, path, body, actor=actor)
        assert reply.status == status, (method, path, reply.status, reply.body)
        return reply.body

    async def add_user(self, username: str, role: str, workspace: str | None = None,
                       *, actor: str | None = None) -> dict[str, Any]:
        """Add a user (as the operator unless ``actor``)."""
        body: dict[str, Any] = {"username": username, "role": role}
        if workspace is not None:
            body["workspace"] = workspace
        result: dict[str, Any] = await self.ok("POST", "/users", body, actor=actor, status=201)
        return result

    async def create(self, token_type: str, name: str = "a token", *, actor: str | None = None,
                     **fields: Any) -> dict[str, Any]:
        """Create a token and insist on 201; the create response (with the secret)."""
        result: dict[str, Any] = await self.ok(
            "POST", "/tokens", {"type": token_type, "name": name, **fields},
            actor=actor, status=201)
        return result

    async def member_tokens(self, enabled: bool, *, actor: str | None = None,
                            workspace: str | None = None) -> None:
        """Switch the member-token feature."""
        body: dict[str, Any] = {"enabled": enabled}
        if workspace is not None:
            body["workspace"] = workspace
        await self.ok("PUT", "/settings/member-tokens", body, actor=actor)

    async def tokens(self, query: str = "", *, actor: str | None = None) -> list[dict[str, Any]]:
        """GET /tokens; the list."""
        body = await self.ok("GET", "/tokens" + query, actor=actor)
        tokens: list[dict[str, Any]] = body["tokens"]
        return tokens

    async def token(self, token: str) -> dict[str, Any]:
        """One token's listing entry, as the operator sees it."""
        (found,) = [t for t in await self.tokens() if t["token"] == token]
        return found

    async def proxy(self, token: str, secret: str, path: str = "/api/default/reports",
                    method: str = "GET") -> Reply:
        """A request through the proxy with Basic credentials."""
        async with self.session.request(method, self.gp.proxy + path,
                                        headers={"Authorization": basic(token, secret)}) as resp:
            return await _reply(resp)

    async def use(self, created: dict[str, Any], path: str = "/api/default/reports") -> Reply:
        """A proxied request with a create response's credentials."""
        return await self.proxy(created["token"], created["secret"], path)

    def last_seen_header(self, name: str) -> str | None:
        """A header of the last request the upstream received."""
        headers = {k.lower(): v for k, v in self.upstream.seen[-1].headers}
        return headers.get(name.lower())


async def _reply(resp: aiohttp.ClientResponse) -> Reply:
    text = await resp.text()
    try:
        body = await resp.json(content_type=None) if text else {}
    except ValueError:
        body = None
    return Reply(resp.status, body, dict(resp.headers), text)


@asynccontextmanager
async def direct_lifecycle(gp: GatewayProcess, redis_url: str,
                           clock: Callable[[], float] | None = None) -> AsyncIterator[Lifecycle]:
    """A :class:`Lifecycle` on the gateway's Redis with its master key (a second writer)."""
    settings = load_settings(environ={}, overrides={"store": {"url": redis_url}})
    store = open_store(redis_url)
    try:
        if clock is None:
            yield Lifecycle(store, Keys.from_env(gp.env), settings)
        else:
            yield Lifecycle(store, Keys.from_env(gp.env), settings, clock=clock)
    finally:
        await store.close()


def cli_env(master_key: str | None, **extra: str) -> dict[str, str]:
    """The environment for a ``tokengate`` subprocess: no stray TOKENGATE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
    if master_key is not None:
        env["TOKENGATE_MASTER_KEY"] = master_key
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gateway ARGS`` and capture its output."""
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
