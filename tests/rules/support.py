"""Helpers for the endpoint-rule and rate-limit tests: a raw HTTP client and extra tokens.

The raw client writes the request target byte for byte, so the gateway sees
exactly the spelling under test (an ordinary client would normalise it first).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from multidict import CIMultiDict

from gateway.policy.credentials import new_secret, new_token
from gateway.policy.model import Role, TokenType
from gateway.policy.permissions import Actor
from tests.conftest import GatewayProcess, InProcess

MakeGateway = Callable[..., Awaitable[InProcess]]
"""The type of the ``make_gateway`` fixture."""
GatewayFactory = Callable[..., GatewayProcess]
"""The type of the ``gateway_factory`` fixture."""


@dataclass
class RawResponse:
    """A response read off the socket: status, headers, body."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


async def raw_request(
    base: str,
    method: str | bytes,
    target: str | bytes,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    local_addr: tuple[str, int] | None = None,
) -> RawResponse:
    """Send one HTTP/1.1 request with ``target`` exactly as given; read the whole response."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port, local_addr=local_addr)
    try:
        lines = [
            (method if isinstance(method, bytes) else method.encode("latin-1"))
            + b" " + (target if isinstance(target, bytes) else target.encode("latin-1"))
            + b" HTTP/1.1",
            f"Host: {url.netloc}".encode(),
            b"Connection: close",
            f"Content-Length: {len(body)}".encode(),
        ]
        lines += [f"{k}: {v}".encode("latin-1") for k, v in (headers or {}).items()]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
    return _parse(data, head_only=(method in ("HEAD", b"HEAD")))


def _parse(data: bytes, *, head_only: bool) -> RawResponse:
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if head_only:
        rest = b""
    elif headers.get("Transfer-Encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    return RawResponse(int(status_line.split()[1]), headers, rest)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


async def process_token(gp: GatewayProcess, **body: object) -> tuple[str, str]:
    """A new token (a workspace token by default) of a real gateway process, and its secret."""
    status, created = await asyncio.to_thread(
        gp.admin_call, "POST", "/admin/api/tokens", {"type": "workspace", "name": "t", **body})
    assert status == 201, created
    return created["token"], created["secret"]


async def process_member_token(gp: GatewayProcess, username: str = "mia") -> tuple[str, str]:
    """A member token (and its secret) of a new member user of a real gateway's default workspace."""
    for method, path, body, actor in [
        ("POST", "/admin/api/users", {"username": username, "role": "member"}, None),
        ("PUT", "/admin/api/settings/member-tokens", {"enabled": True}, None),
        ("POST", "/admin/api/tokens", {"type": "member", "name": "m"}, username),
    ]:
        status, answer = await asyncio.to_thread(gp.admin_call, method, path, body, actor)
        assert status in (200, 201), (path, answer)
    return answer["token"], answer["secret"]


async def member_token(g: InProcess, username: str = "mia") -> tuple[str, str]:
    """A member token (and its secret) of a new member user in the default workspace."""
    lifecycle = g.gw.lifecycle  # type: ignore[attr-defined]
    operator = Actor.operator()
    user = await lifecycle.add_user(operator, username, Role.MEMBER, None)
    await lifecycle.set_member_tokens(operator, True, None)
    new = await lifecycle.create_token(Actor.of(user), TokenType.MEMBER, f"{username}'s token")
    return new.record.token, new.secret


async def another_member_token(g: InProcess, username: str) -> tuple[str, str]:
    """One more member token for an existing member user."""
    lifecycle = g.gw.lifecycle  # type: ignore[attr-defined]
    user = await lifecycle.store.get_user(username)
    new = await lifecycle.create_token(Actor.of(user), TokenType.MEMBER, "another token")
    return new.record.token, new.secret


async def personal_token(g: InProcess, username: str = "pat") -> tuple[str, str]:
    """An imported legacy personal token (the gateway must have a future cutoff)."""
    lifecycle = g.gw.lifecycle  # type: ignore[attr-defined]
    await lifecycle.add_user(Actor.operator(), username, Role.MEMBER, None)
    token, secret = new_token(TokenType.PERSONAL), new_secret()
    await lifecycle.import_personal(token, secret, username)
    return token, secret


def problem(response: RawResponse) -> dict[str, Any]:
    """The problem+json body of a response (asserting its content type)."""
    assert response.headers["Content-Type"].startswith("application/problem+json"), response
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status
    return body


async def enable_trusted_auth(g: InProcess, session: Any, workspace: str = "default") -> str:
    """Enable trusted authentication for ``workspace`` through the admin API; its secret_key."""
    from tests.conftest import ADMIN_KEY

    async with session.put(f"{g.admin}/admin/api/workspaces/{workspace}/trusted-auth",
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as r:
        assert r.status == 201, await r.text()
        key: str = (await r.json())["secret_key"]
        return key


async def trusted_bearer(g: InProcess, session: Any, key: str, username: str) -> str:
    """A trusted-auth bearer token for ``username``, minted on the proxy's token endpoint."""
    body = {"username": username, "secret_key": key}
    async with session.post(g.proxy + "/api/rest/2.0/auth/token/full", json=body) as r:
        assert r.status == 200, await r.text()
        token: str = (await r.json())["token"]
        return token
