"""Fixtures for the admin-API tests: a real gateway on real Redis, with users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.admin.support import Gw
from tests.conftest import GatewayProcess, RecordingUpstream

StartGw = Callable[..., Awaitable[Gw]]


@pytest.fixture
async def start_gw(
    gateway_factory: Callable[..., GatewayProcess], redis_url: str, upstream: RecordingUpstream,
) -> AsyncIterator[StartGw]:
    """Start gateway processes on the test Redis (with extra env if asked), unseeded."""
    session = aiohttp.ClientSession()

    async def start(**kw: Any) -> Gw:
        gp = gateway_factory(store_url=redis_url, upstream=upstream.url, **kw)
        return Gw(gp, upstream, session, redis_url)

    yield start
    await session.close()


async def seed(gw: Gw) -> None:
    """Users of two workspaces: alice (admin), bob and carol (members) in ``default``;
    olga (admin) and oscar (member) in ``other``."""
    await gw.add_user("alice", "admin")
    await gw.add_user("bob", "member")
    await gw.add_user("carol", "member")
    await gw.add_user("olga", "admin", "other")
    await gw.add_user("oscar", "member", "other")


@pytest.fixture
async def gw(start_gw: StartGw) -> Gw:
    """One gateway on the test Redis, seeded with the users of :func:`seed`."""
    g = await start_gw()
    await seed(g)
    return g
