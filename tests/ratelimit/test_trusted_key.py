"""Trusted-auth bearer tokens are rate-limited by their user."""

from __future__ import annotations

import aiohttp

from gateway.policy.model import Role
from gateway.policy.permissions import Actor
from tests.conftest import InProcess, RecordingUpstream
from tests.rules.support import MakeGateway, enable_trusted_auth, trusted_bearer


async def test_trusted_bearers_of_one_user_share_a_quota(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """Each bearer is short-lived, so the key is the user: minting a new bearer does not reset the quota."""
    g: InProcess = await make_gateway({"rate_limit": {"limit": 3, "window_seconds": 10}})
    await g.gw.lifecycle.add_user(Actor.operator(), "tina", Role.MEMBER, None)  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as s:
        key = await enable_trusted_auth(g, s)
        first, second = await trusted_bearer(g, s, key, "tina"), await trusted_bearer(g, s, key, "tina")
        remaining = []
        for token in (first, second, first, second):
            async with s.get(g.proxy + "/api/default/reports",
                             headers={"Authorization": f"Bearer {token}"}) as r:
                remaining.append((r.status, r.headers["X-RateLimit-Remaining"]))
    assert remaining == [(200, "2"), (200, "1"), (200, "0"), (429, "0")]
