"""Network allow-lists through a real gateway process and Redis, behind a trusted proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from tests.conftest import GatewayProcess, RecordingUpstream
from tests.proxy.restricted import Plane, start_plane

StartPlane = Callable[..., Awaitable[Plane]]
NETWORKS = ["203.0.113.0/24", "2001:db8:5::/48"]


@pytest.fixture
async def start(gateway_factory: Callable[..., GatewayProcess], redis_url: str,
                upstream: RecordingUpstream) -> AsyncIterator[StartPlane]:
    """Start a gateway (with extra TOKENGATE_* settings) that has alice, an admin."""
    async with aiohttp.ClientSession() as session:
        async def make(**env: str) -> Plane:
            p = start_plane(gateway_factory, redis_url, upstream, session, **env)
            await p.add_user("alice", "admin")
            return p

        yield make


def xff(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_behind_a_trusted_proxy_the_forwarded_client_must_be_inside(
        start: StartPlane) -> None:
    """The client X-Forwarded-For names (as the failed-auth throttle reads it) decides:
    inside an IPv4 or IPv6 network passes, anywhere else is 403 naming the network rule,
    counted, and never reaches the upstream."""
    plane = await start(TOKENGATE_PROXY_TRUSTED_PROXIES="127.0.0.0/8")
    created = await plane.create("workspace", "office only", actor="alice",
                                 allowed_networks=NETWORKS)
    assert created["allowed_networks"] == NETWORKS
    for client in ("203.0.113.9", "2001:db8:5::77", "198.51.100.1, 203.0.113.200"):
        assert (await plane.send(created, headers=xff(client))).status == 200, client
    seen = len(plane.upstream.seen)
    for client in ("198.51.100.7", "2001:db8:6::1", "203.0.113.9, 198.51.100.7"):
        reply = await plane.send(created, headers=xff(client))
        assert (reply.status, reply.body.get("rule")) == (403, "network"), client
    plain = await plane.send(created)  # no X-Forwarded-For: the proxy itself, 127.0.0.1
    assert (plain.status, plain.body.get("rule")) == (403, "network")
    assert len(plane.upstream.seen) == seen
    assert await plane.metric("tokengate_denials_total", rule="network", mode="enforce") == 4


async def test_without_trusted_proxies_a_client_cannot_claim_an_address(
        start: StartPlane) -> None:
    """With no trusted proxy, X-Forwarded-For is ignored: the peer (127.0.0.1) is judged."""
    plane = await start()
    outside = await plane.create("workspace", "office only", actor="alice",
                                 allowed_networks=NETWORKS)
    reply = await plane.send(outside, headers=xff("203.0.113.9"))
    assert (reply.status, reply.body.get("rule")) == (403, "network")
    local = await plane.create("workspace", "this host", actor="alice",
                               allowed_networks=["127.0.0.1", "::1"])
    assert (await plane.send(local, headers=xff("198.51.100.7"))).status == 200


async def test_bad_networks_are_refused_at_creation_naming_the_field(start: StartPlane) -> None:
    """A bad CIDR (or one with host bits set) is a 422 naming the entry; nothing is created."""
    plane = await start()
    for networks, field in ((["203.0.113.0/33"], "allowed_networks[0]"),
                            (["203.0.113.0/24", "203.0.113.7/24"], "allowed_networks[1]"),
                            ("203.0.113.0/24", "allowed_networks"), ([], "allowed_networks")):
        reply = await plane.call("POST", "/tokens", {
            "type": "workspace", "name": "x", "allowed_networks": networks}, actor="alice")
        assert reply.status == 422, reply.body
        assert reply.body["field"] == field
    assert await plane.tokens(actor="alice") == []
