"""Token expiry: 90 days by default, a per-workspace default and maximum, per-token days."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from gateway.lifecycle import DAY
from gateway.policy.model import TokenType
from tests.admin.support import Gw, direct_lifecycle


def _lifetime_days(token: dict[str, Any]) -> float:
    created = dt.datetime.fromisoformat(token["created_at"])
    expires = dt.datetime.fromisoformat(token["expires_at"])
    # Both are shown truncated to milliseconds, so allow that much.
    return round((expires - created) / dt.timedelta(days=1), 6)


async def _expired_token(gw: Gw, token_type: TokenType, actor: str) -> dict[str, Any]:
    """A token created 100 days ago with a 1-day lifetime, written by a second process's
    Lifecycle on the gateway's Redis with its master key."""
    long_ago = time.time() - 100 * DAY
    async with direct_lifecycle(gw.gp, gw.redis_url, clock=lambda: long_ago) as lc:
        new = await lc.create_token(await lc.resolve_actor(actor), token_type, "old",
                                    expires_in_days=1)
    return {"token": new.record.token, "secret": new.secret}


async def test_tokens_expire_90_days_after_creation_by_default(gw: Gw) -> None:
    """Workspace and member tokens created without `expires_in_days` expire after exactly 90 days."""
    await gw.member_tokens(True, actor="alice")
    for created in (await gw.create("workspace", "w", actor="alice"),
                    await gw.create("member", "m", actor="bob"),
                    await gw.create("workspace", "op")):
        assert _lifetime_days(created) == 90
    settings = await gw.ok("GET", "/settings", actor="alice")
    assert settings["effective_default_expiry_days"] == 90
    assert settings["effective_max_expiry_days"] == 365


async def test_expires_in_days_is_accepted_up_to_the_maximum(gw: Gw) -> None:
    """`expires_in_days` from 1 to the maximum (365) sets the lifetime; beyond it is 422 naming it."""
    assert _lifetime_days(await gw.create("workspace", "a", actor="alice", expires_in_days=1)) == 1
    assert _lifetime_days(await gw.create("workspace", "b", actor="alice",
                                          expires_in_days=365)) == 365
    for days in (366, 0, -5):
        reply = await gw.call("POST", "/tokens", {"type": "workspace", "name": "c",
                                                  "expires_in_days": days}, actor="alice")
        assert reply.status == 422, (days, reply.body)
        assert reply.detail.startswith("expires_in_days") and "365" in reply.detail


async def test_a_workspace_setting_changes_the_default_and_the_maximum(gw: Gw) -> None:
    """An admin's token-expiry setting changes the default lifetime and caps `expires_in_days`."""
    body = await gw.ok("PUT", "/settings/token-expiry",
                       {"default_expiry_days": 7, "max_expiry_days": 30}, actor="alice")
    assert (body["default_expiry_days"], body["max_expiry_days"]) == (7, 30)
    settings = await gw.ok("GET", "/settings", actor="alice")
    assert (settings["effective_default_expiry_days"], settings["effective_max_expiry_days"]) \
        == (7, 30)

    await gw.member_tokens(True, actor="alice")
    assert _lifetime_days(await gw.create("workspace", "w", actor="alice")) == 7
    assert _lifetime_days(await gw.create("member", "m", actor="bob")) == 7
    assert _lifetime_days(await gw.create("member", "m", actor="bob", expires_in_days=30)) == 30
    too_long = await gw.call("POST", "/tokens", {"type": "member", "name": "m",
                                                 "expires_in_days": 31}, actor="bob")
    assert too_long.status == 422
    assert too_long.detail == "expires_in_days: must be between 1 and 30"

    # Another workspace keeps the deployment's defaults.
    assert _lifetime_days(await gw.create("workspace", "o", actor="olga")) == 90

    # Back to the deployment's defaults.
    await gw.ok("PUT", "/settings/token-expiry",
                {"default_expiry_days": None, "max_expiry_days": None}, actor="alice")
    assert _lifetime_days(await gw.create("workspace", "w2", actor="alice")) == 90


async def test_a_larger_maximum_allows_longer_tokens(gw: Gw) -> None:
    """Raising the workspace maximum above the deployment's 365 days allows longer lifetimes."""
    await gw.ok("PUT", "/settings/token-expiry", {"max_expiry_days": 730}, actor="alice")
    assert _lifetime_days(await gw.create("workspace", "long", actor="alice",
                                          expires_in_days=730)) == 730
    assert _lifetime_days(await gw.create("workspace", "default", actor="alice")) == 90


async def test_a_default_above_the_maximum_is_refused(gw: Gw) -> None:
    """A default longer than the maximum is 422 naming `default_expiry_days`."""
    reply = await gw.call("PUT", "/settings/token-expiry",
                          {"default_expiry_days": 40, "max_expiry_days": 30}, actor="alice")
    assert reply.status == 422 and reply.detail.startswith("default_expiry_days")
    assert (await gw.ok("GET", "/settings", actor="alice"))["default_expiry_days"] is None


@pytest.mark.parametrize("body", [{"default_expiry_days": 0}, {"max_expiry_days": 3651},
                                  {"max_expiry_days": "30"}, {"default_expiry_days": 1.5}])
async def test_out_of_range_or_mistyped_expiry_settings_are_refused(gw: Gw,
                                                                    body: dict[str, Any]) -> None:
    """An expiry setting outside 1-3650 or not an integer is 422 naming the field."""
    reply = await gw.call("PUT", "/settings/token-expiry", body, actor="alice")
    assert reply.status == 422
    assert reply.detail.startswith(next(iter(body)))


async def test_only_admins_change_expiry_and_the_operator_names_the_workspace(gw: Gw) -> None:
    """Members get 403; an admin changes only their own workspace; the operator any."""
    assert (await gw.call("PUT", "/settings/token-expiry", {"max_expiry_days": 5},
                          actor="bob")).status == 403
    assert (await gw.call("PUT", "/settings/token-expiry",
                          {"max_expiry_days": 5, "workspace": "other"}, actor="alice")).status == 403
    await gw.ok("PUT", "/settings/token-expiry", {"max_expiry_days": 5, "default_expiry_days": 2,
                                                  "workspace": "other"})
    assert _lifetime_days(await gw.create("workspace", "o", actor="olga")) == 2
    assert _lifetime_days(await gw.create("workspace", "d", actor="alice")) == 90


@pytest.mark.parametrize("token_type, actor", [(TokenType.WORKSPACE, "alice"),
                                               (TokenType.MEMBER, "bob")])
async def test_an_expired_token_is_refused_saying_so_and_lists_as_expired(
        gw: Gw, token_type: TokenType, actor: str) -> None:
    """An expired token gets 401 saying it expired, lists as `expired`, and is audited."""
    await gw.member_tokens(True, actor="alice")
    old = await _expired_token(gw, token_type, actor)
    reply = await gw.use(old)
    assert reply.status == 401
    assert "expired" in reply.detail
    assert reply.headers["WWW-Authenticate"].startswith("Basic")

    listed = await gw.token(old["token"])
    assert listed["status"] == "expired" and listed["revoked_at"] is None
    assert [t["token"] for t in await gw.tokens("?status=expired", actor=actor)] == [old["token"]]
    assert await gw.tokens("?status=active", actor=actor) == []

    events = (await gw.ok("GET", "/audit?limit=5", actor="alice"))["events"]
    assert any(e["event"] == "token.presented_expired" and e["subject"] == old["token"]
               for e in events)


async def test_revoke_all_does_not_count_expired_tokens(gw: Gw) -> None:
    """revoke-all counts only active tokens: an expired one stays `expired`."""
    old = await _expired_token(gw, TokenType.WORKSPACE, "alice")
    live = await gw.create("workspace", "live", actor="alice")
    assert await gw.ok("POST", "/tokens/revoke-all", {}, actor="alice") == {"revoked": 1}
    assert (await gw.token(old["token"]))["status"] == "expired"
    assert (await gw.token(live["token"]))["status"] == "revoked"
