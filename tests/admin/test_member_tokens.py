"""Member tokens: the admin switch, creation for oneself only, acting as the user."""

from __future__ import annotations

import pytest

from gateway.policy.permissions import MEMBER_DISABLED
from tests.admin.support import Gw


@pytest.mark.parametrize("actor", ["bob", "alice"])
async def test_creating_a_member_token_while_the_feature_is_off_is_refused(gw: Gw, actor: str) -> None:
    """While member tokens are off (the default), creating one is 403 saying an admin must enable them."""
    assert (await gw.ok("GET", "/settings", actor="alice"))["member_tokens"] is False
    reply = await gw.call("POST", "/tokens", {"type": "member", "name": "mine"}, actor=actor)
    assert reply.status == 403
    assert reply.detail == MEMBER_DISABLED
    assert "an admin must enable member tokens" in reply.detail


async def test_only_admins_switch_the_member_token_feature_for_their_workspace(gw: Gw) -> None:
    """Members get 403 switching it; an admin switches their own workspace; the operator any."""
    bob = await gw.call("PUT", "/settings/member-tokens", {"enabled": True}, actor="bob")
    assert bob.status == 403
    foreign = await gw.call("PUT", "/settings/member-tokens",
                            {"enabled": True, "workspace": "other"}, actor="alice")
    assert foreign.status == 403
    assert (await gw.ok("GET", "/settings?workspace=other"))["member_tokens"] is False

    body = await gw.ok("PUT", "/settings/member-tokens", {"enabled": True}, actor="alice")
    assert body["member_tokens"] is True
    assert (await gw.ok("GET", "/settings", actor="alice"))["member_tokens"] is True
    assert (await gw.ok("GET", "/settings", actor="olga"))["member_tokens"] is False

    await gw.member_tokens(True, workspace="other")
    assert (await gw.ok("GET", "/settings", actor="olga"))["member_tokens"] is True
    assert (await gw.call("GET", "/settings", actor="bob")).status == 403


async def test_a_member_token_acts_as_its_user_with_that_users_role(gw: Gw) -> None:
    """A member's token reaches the upstream as that member; an admin's member token as that admin."""
    await gw.member_tokens(True, actor="alice")
    bobs = await gw.create("member", "bob's laptop", actor="bob")
    assert (bobs["owner"], bobs["created_by"], bobs["token"][:4]) == ("bob", "bob", "tgm_")
    assert (await gw.use(bobs)).status == 200
    assert gw.last_seen_header("X-Tokengate-User") == "bob"
    assert gw.last_seen_header("X-Tokengate-Role") == "member"
    assert gw.last_seen_header("X-Tokengate-Token-Type") == "member"

    alices = await gw.create("member", "alice's laptop", actor="alice")
    assert (await gw.use(alices)).status == 200
    assert gw.last_seen_header("X-Tokengate-User") == "alice"
    assert gw.last_seen_header("X-Tokengate-Role") == "admin"


async def test_switching_off_suspends_member_tokens_and_switching_on_restores_them(gw: Gw) -> None:
    """Off: existing member tokens get 401 saying why but stay listed; on: they work again,
    except those revoked meanwhile."""
    await gw.member_tokens(True, actor="alice")
    kept = await gw.create("member", "kept", actor="bob")
    dropped = await gw.create("member", "dropped", actor="bob")
    ws_token = await gw.create("workspace", "ci", actor="alice")
    for created in (kept, dropped, ws_token):
        assert (await gw.use(created)).status == 200

    await gw.member_tokens(False, actor="alice")
    refused = await gw.use(kept)
    assert refused.status == 401
    assert "member API tokens are disabled" in refused.detail
    assert "admin must enable" in refused.detail
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert (await gw.use(ws_token)).status == 200
    listed = {t["token"]: t["status"] for t in await gw.tokens(actor="bob")}
    assert listed == {kept["token"]: "active", dropped["token"]: "active"}

    await gw.ok("DELETE", f"/tokens/{dropped['token']}", actor="bob")
    await gw.member_tokens(True, actor="alice")
    assert (await gw.use(kept)).status == 200
    assert (await gw.use(dropped)).status == 401


async def test_the_switch_is_per_workspace(gw: Gw) -> None:
    """Turning member tokens off in one workspace leaves another's working."""
    await gw.member_tokens(True, actor="alice")
    await gw.member_tokens(True, actor="olga")
    bobs = await gw.create("member", "b", actor="bob")
    oscars = await gw.create("member", "o", actor="oscar")
    assert oscars["workspace"] == "other"
    await gw.member_tokens(False, actor="olga")
    assert (await gw.use(bobs)).status == 200
    assert (await gw.use(oscars, "/api/other/reports")).status == 401


async def test_member_tokens_are_only_ever_for_oneself(gw: Gw) -> None:
    """No one creates a member token for someone else: there is no owner field, another
    workspace is refused, and the operator must act as the user."""
    await gw.member_tokens(True, actor="alice")
    owner = await gw.call("POST", "/tokens", {"type": "member", "name": "x", "owner": "carol"},
                          actor="alice")
    assert owner.status == 422 and owner.body["field"] == "owner"
    foreign = await gw.call("POST", "/tokens", {"type": "member", "name": "x",
                                                "workspace": "other"}, actor="bob")
    assert foreign.status == 422 and foreign.detail.startswith("workspace")
    operator = await gw.call("POST", "/tokens", {"type": "member", "name": "x"})
    assert operator.status == 403 and "X-Tokengate-Actor" in operator.detail
    assert await gw.tokens() == []
    # Workspace names are one case: naming one's own in another case is one's own.
    own = await gw.call("POST", "/tokens", {"type": "member", "name": "x",
                                            "workspace": "DEFAULT"}, actor="bob")
    assert own.status == 201 and own.body["workspace"] == "default"
