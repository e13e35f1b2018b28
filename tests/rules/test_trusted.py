"""Trusted-auth bearer tokens pass the shipped deny rules."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.policy.model import Role
from gateway.policy.permissions import Actor
from tests.conftest import InProcess, RecordingUpstream
from tests.rules.support import MakeGateway, enable_trusted_auth, trusted_bearer

CLONE = "/api/default/reports/r1/runs/run9/clone"
INVITES = "/api/default/invites"


@pytest.mark.parametrize("path", [CLONE, INVITES])
async def test_trusted_bearer_passes_the_default_rules(
    make_gateway: MakeGateway, upstream: RecordingUpstream, path: str
) -> None:
    """The default rules name workspace and member tokens only: a trusted-auth bearer's POST is forwarded as that user."""
    g: InProcess = await make_gateway()
    await g.gw.lifecycle.add_user(Actor.operator(), "tina", Role.MEMBER, None)  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as s:
        token = await trusted_bearer(g, s, await enable_trusted_auth(g, s), "tina")
        async with s.post(g.proxy + path, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, await r.text()
    seen = upstream.seen[-1]
    headers = {k.lower(): v for k, v in seen.headers}
    assert (seen.method, seen.raw_path) == ("POST", path)
    assert (headers["x-tokengate-token-type"], headers["x-tokengate-user"]) == ("trusted", "tina")
