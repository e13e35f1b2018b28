"""Scoped tokens through a real gateway process and Redis: only what a grant allows passes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from tests.conftest import GatewayProcess, RecordingUpstream
from tests.proxy.restricted import Plane, start_plane

REPORTS = {"methods": ["GET"], "path": "/api/{workspace}/reports/**"}
CLASSES = """
[[rate_limit.classes]]
name = "reports"
methods = ["GET"]
path = "/api/{workspace}/reports/**"
limit = 100
"""


@pytest.fixture
async def plane(gateway_factory: Callable[..., GatewayProcess], redis_url: str,
                upstream: RecordingUpstream) -> AsyncIterator[Plane]:
    """A gateway with a "reports" rate-limit class, alice (admin) and bob (member)."""
    async with aiohttp.ClientSession() as session:
        p = start_plane(gateway_factory, redis_url, upstream, session, config_text=CLASSES)
        await p.add_user("alice", "admin")
        await p.add_user("bob", "member")
        await p.member_tokens(True)
        yield p


async def denials(plane: Plane) -> float:
    return await plane.metric("tokengate_denials_total", rule="scope", mode="enforce")


async def test_a_read_only_token_reads_and_is_refused_anything_else_without_using_quota(
        plane: Plane) -> None:
    """GET passes; POST, DELETE and a GET overridden to DELETE are 403 naming the scope,
    counted in tokengate_denials_total{rule="scope"}, reach no upstream and use no quota."""
    created = await plane.create("workspace", "reader", actor="alice", scopes=["read-only"])
    assert created["scopes"] == ["read-only"]
    first = await plane.send(created, "/api/default/users")
    assert first.status == 200
    remaining = int(first.headers["X-RateLimit-Remaining"])
    seen = len(plane.upstream.seen)
    refused = [
        await plane.send(created, method="POST"),
        await plane.send(created, "/api/default/reports/r1", method="DELETE"),
        await plane.send(created, headers={"X-HTTP-Method-Override": "DELETE"}),
        await plane.send(created, "/api/default/reports?_method=PUT"),
    ]
    for reply in refused:
        assert reply.status == 403, reply.body
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert reply.body["rule"] == "scope"
        assert "X-RateLimit-Remaining" not in reply.headers
    assert len(plane.upstream.seen) == seen
    assert await denials(plane) == 4
    again = await plane.send(created, "/api/default/users", method="HEAD")
    assert again.status == 200
    assert int(again.headers["X-RateLimit-Remaining"]) == remaining - 1


async def test_a_path_grant_allows_its_methods_on_its_paths_only(plane: Plane) -> None:
    """GET (and HEAD) under reports pass, in any spelling the pattern language matches;
    other paths and methods are 403."""
    created = await plane.create("workspace", "reports only", actor="alice", scopes=[REPORTS])
    for path in ("/api/default/reports", "/api/default/reports/r1/runs/9",
                 "/api/default/Reports/r1/"):
        assert (await plane.send(created, path)).status == 200, path
    assert (await plane.send(created, "/api/default/reports/r1", method="HEAD")).status == 200
    for path, method in (("/api/default/users", "GET"), ("/api/default/reports", "POST"),
                         ("/api/default/reports/../users", "GET")):
        reply = await plane.send(created, path, method=method)
        assert (reply.status, reply.body.get("rule")) == (403, "scope"), (path, method)


async def test_a_class_grant_follows_the_rate_limit_class(plane: Plane) -> None:
    """A grant naming the "reports" class allows what the limiter files there."""
    created = await plane.create("workspace", "by class", actor="alice",
                                 scopes=[{"class": "reports"}])
    ok = await plane.send(created, "/api/default/reports/r1")
    assert ok.status == 200
    assert 'RateLimit-Policy' in ok.headers and '"reports"' in ok.headers["RateLimit-Policy"]
    assert (await plane.send(created, "/api/default/users")).status == 403


async def test_scopes_never_widen_what_the_deny_rules_and_the_workspace_refuse(
        plane: Plane) -> None:
    """A grant covering the invite endpoint still meets the create-invite rule; one
    covering every path still cannot read another workspace."""
    created = await plane.create("member", "mine", actor="bob",
                                 scopes=[{"methods": ["*"], "path": "/**"}])
    invite = await plane.send(created, "/api/default/invites", method="POST")
    assert (invite.status, invite.body["rule"]) == (403, "create-invite")
    other = await plane.send(created, "/api/other/reports")
    assert (other.status, other.body["rule"]) == (403, "workspace-scope")
    assert (await plane.send(created, "/api/default/anything", method="PUT")).status == 200
    assert plane.last_seen_header("X-Tokengate-Role") == "member"  # never more than bob's


async def test_an_unscoped_token_is_unaffected(plane: Plane) -> None:
    """Without scopes the token may do what its type allows, and lists scopes as null."""
    created = await plane.create("workspace", "plain", actor="alice")
    assert created["scopes"] is None
    assert (await plane.send(created, "/api/default/reports", method="POST")).status == 200
    assert (await plane.send(created, "/api/default/x", method="DELETE")).status == 200
    assert await denials(plane) == 0


async def test_a_forward_auth_decision_judges_scopes_and_networks_alike(
        gateway_factory: Callable[..., GatewayProcess], redis_url: str,
        upstream: RecordingUpstream) -> None:
    """Asked by a proxy (Traefik/Caddy shape) about the original request, the decision
    endpoint allows what the token's grants allow from its networks, and refuses the rest
    with the same 403 problem naming scope or network."""
    async with aiohttp.ClientSession() as session:
        plane = start_plane(gateway_factory, redis_url, upstream, session,
                            TOKENGATE_AUTHZ_ENABLED="true")
        await plane.add_user("alice", "admin")
        created = await plane.create("workspace", "decided", actor="alice",
                                     scopes=["read-only"], allowed_networks=["203.0.113.0/24"])

        async def decide(method: str, client: str) -> tuple[int, str | None]:
            reply = await plane.send(created, "/_tokengate/authz", headers={
                "X-Forwarded-Method": method, "X-Forwarded-Uri": "/api/default/reports",
                "X-Forwarded-Host": "api.example", "X-Forwarded-Proto": "https",
                "X-Forwarded-For": client})
            return reply.status, (reply.body or {}).get("rule")

        assert await decide("GET", "203.0.113.9") == (200, None)
        assert await decide("POST", "203.0.113.9") == (403, "scope")
        assert await decide("GET", "198.51.100.7") == (403, "network")
        assert upstream.seen == []  # a decision forwards nothing
