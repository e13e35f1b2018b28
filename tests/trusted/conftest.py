"""Fixtures for trusted-auth tests: a real gateway on real Redis, called over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from tests.conftest import ADMIN_KEY, GatewayProcess, RecordingUpstream

V2 = "/api/rest/2.0/auth/token/full"
V1 = "/callosum/v1/tspublic/v1/session/auth/token"
REVOKE = "/api/rest/2.0/auth/token/revoke"
VALIDATE = "/api/rest/2.0/auth/token/validate"
KEY_FAILURE_LIMIT = 3
CONFIG = f"""
[trusted_auth]
key_failures = {{ limit = {KEY_FAILURE_LIMIT}, window_seconds = 60 }}
"""


@dataclass
class Reply:
    """One HTTP response: status, body (JSON when it parses, else text), headers."""

    status: int
    body: Any
    text: str
    headers: dict[str, str] = field(default_factory=dict)


async def _reply(resp: aiohttp.ClientResponse) -> Reply:
    text = await resp.text()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = text
    return Reply(resp.status, body, text, dict(resp.headers))


class Trusted:
    """A running gateway with users, and the trusted-auth calls the tests make."""

    def __init__(self, gp: GatewayProcess, upstream: RecordingUpstream,
                 session: aiohttp.ClientSession) -> None:
        self.gp = gp
        self.upstream = upstream
        self.session = session

    async def admin(self, method: str, path: str, body: Any = None,
                    actor: str | None = None) -> Reply:
        """Call ``/admin/api`` + ``path`` with the admin key."""
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        if actor is not None:
            headers["X-Tokengate-Actor"] = actor
        async with self.session.request(method, self.gp.admin + "/admin/api" + path,
                                        json=body, headers=headers) as resp:
            return await _reply(resp)

    async def add_user(self, username: str, role: str, workspace: str = "default") -> None:
        """Add a user as the operator."""
        reply = await self.admin("POST", "/users",
                                 {"username": username, "role": role, "workspace": workspace})
        assert reply.status == 201, reply.body

    async def enable(self, workspace: str = "default", actor: str | None = None,
                     org_id: int | None = None, status: int = 201) -> str:
        """Enable trusted auth for ``workspace`` (with a numeric org id); its secret_key."""
        body = None if org_id is None else {"org_id": org_id}
        reply = await self.admin("PUT", f"/workspaces/{workspace}/trusted-auth", body,
                                 actor=actor)
        assert reply.status == status, reply.body
        key: str = reply.body["secret_key"]
        return key

    async def post(self, path: str, *, json_body: Any = None, raw: bytes | None = None,
                   form: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
        """POST to the proxy listener."""
        kw: dict[str, Any] = {"headers": headers or {}}
        if form is not None:
            kw["data"] = form
        elif raw is not None:
            kw["data"] = raw
        else:
            kw["json"] = json_body
        async with self.session.post(self.gp.proxy + path, **kw) as resp:
            return await _reply(resp)

    async def mint(self, key: str, username: str = "bob", **fields: Any) -> Reply:
        """A v2 token request."""
        return await self.post(V2, json_body={"username": username, "secret_key": key, **fields})

    async def bearer(self, key: str, username: str = "bob", **fields: Any) -> str:
        """Mint and insist on success; the bearer token."""
        reply = await self.mint(key, username, **fields)
        assert reply.status == 200, reply.body
        token: str = reply.body["token"]
        return token

    async def call(self, token: str, path: str = "/api/default/reports",
                   method: str = "GET") -> Reply:
        """A proxied request with ``Authorization: Bearer``."""
        async with self.session.request(method, self.gp.proxy + path,
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
            return await _reply(resp)

    def seen_headers(self) -> dict[str, str]:
        """The headers of the last request the upstream received (lower-case names)."""
        return {k.lower(): v for k, v in self.upstream.seen[-1].headers}

    async def audit(self, event: str) -> list[dict[str, Any]]:
        """Audit events named ``event``, newest first."""
        reply = await self.admin("GET", "/audit?limit=1000")
        return [e for e in reply.body["events"] if e["event"] == event]


StartTrusted = Callable[..., Awaitable[Trusted]]


@pytest.fixture
async def start_trusted(
    gateway_factory: Callable[..., GatewayProcess], redis_url: str, upstream: RecordingUpstream,
) -> AsyncIterator[StartTrusted]:
    """Start gateways on the test Redis with users alice (admin) and bob (member) in
    ``default``, olga (admin) and oscar (member) in ``other``."""
    session = aiohttp.ClientSession()

    async def start(**kw: Any) -> Trusted:
        seed = kw.pop("seed", True)
        kw.setdefault("config_text", CONFIG)
        gp = gateway_factory(store_url=redis_url, upstream=upstream.url, **kw)
        t = Trusted(gp, upstream, session)
        if seed:
            for name, role, ws in (("alice", "admin", "default"), ("bob", "member", "default"),
                                   ("olga", "admin", "other"), ("oscar", "member", "other")):
                await t.add_user(name, role, ws)
        return t

    yield start
    await session.close()


@pytest.fixture
async def ta(start_trusted: StartTrusted) -> Trusted:
    """One seeded gateway."""
    return await start_trusted()
