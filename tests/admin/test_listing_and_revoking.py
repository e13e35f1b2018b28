"""Seeing tokens (filters, fields, who sees what) and revoking one or all."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.support import TOKEN_FIELDS, Gw


async def _mixed(gw: Gw) -> dict[str, dict[str, Any]]:
    """One workspace token and two member tokens in ``default``, one of each in ``other``."""
    await gw.member_tokens(True, actor="alice")
    await gw.member_tokens(True, actor="olga")
    return {
        "ws": await gw.create("workspace", "ci", actor="alice"),
        "bob": await gw.create("member", "bob's", actor="bob"),
        "carol": await gw.create("member", "carol's", actor="carol"),
        "other_ws": await gw.create("workspace", "theirs", actor="olga"),
        "oscar": await gw.create("member", "oscar's", actor="oscar"),
    }


def _tokens(listing: list[dict[str, Any]]) -> set[str]:
    return {t["token"] for t in listing}


async def test_listings_show_exactly_the_documented_fields(gw: Gw) -> None:
    """Every listed token has exactly the documented fields, with who made it and when."""
    made = await _mixed(gw)
    (entry,) = [t for t in await gw.tokens(actor="alice") if t["token"] == made["bob"]["token"]]
    assert set(entry) == TOKEN_FIELDS
    assert entry["type"] == "member" and entry["owner"] == "bob" and entry["created_by"] == "bob"
    assert entry["status"] == "active" and entry["revoked_at"] is None
    assert entry["last_used_at"] is None and entry["created_at"].endswith("Z")
    assert {k: v for k, v in made["bob"].items() if k != "secret"} == entry


async def test_admin_sees_every_token_of_their_workspace_and_no_other(gw: Gw) -> None:
    """An admin lists all workspace and member tokens of their own workspace only."""
    made = await _mixed(gw)
    assert _tokens(await gw.tokens(actor="alice")) == {
        made["ws"]["token"], made["bob"]["token"], made["carol"]["token"]}
    assert _tokens(await gw.tokens(actor="olga")) == {
        made["other_ws"]["token"], made["oscar"]["token"]}
    assert (await gw.call("GET", "/tokens?workspace=other", actor="alice")).status == 403


async def test_member_sees_only_their_own_tokens(gw: Gw) -> None:
    """A member's listing holds only the tokens they own, whatever the filters."""
    made = await _mixed(gw)
    assert _tokens(await gw.tokens(actor="bob")) == {made["bob"]["token"]}
    assert await gw.tokens("?type=workspace", actor="bob") == []


async def test_operator_sees_every_workspace_or_the_one_named(gw: Gw) -> None:
    """The operator lists every token of every workspace, or one workspace's."""
    made = await _mixed(gw)
    assert _tokens(await gw.tokens()) == {m["token"] for m in made.values()}
    assert _tokens(await gw.tokens("?workspace=other")) == {
        made["other_ws"]["token"], made["oscar"]["token"]}


async def test_type_and_status_filters_narrow_the_listing(gw: Gw) -> None:
    """`type=` and `status=` filter the listing, which keeps revoked tokens."""
    made = await _mixed(gw)
    await gw.ok("DELETE", f"/tokens/{made['carol']['token']}", actor="alice")
    assert _tokens(await gw.tokens("?type=workspace", actor="alice")) == {made["ws"]["token"]}
    assert _tokens(await gw.tokens("?type=member", actor="alice")) == {
        made["bob"]["token"], made["carol"]["token"]}
    assert _tokens(await gw.tokens("?status=revoked", actor="alice")) == {made["carol"]["token"]}
    assert _tokens(await gw.tokens("?status=active&type=member", actor="alice")) == {
        made["bob"]["token"]}
    assert await gw.tokens("?status=expired", actor="alice") == []
    assert await gw.tokens("?type=personal", actor="alice") == []


@pytest.mark.parametrize("query, field", [("?type=admin", "type"), ("?status=dead", "status")])
async def test_unknown_filter_values_are_refused_naming_the_field(gw: Gw, query: str,
                                                                  field: str) -> None:
    """An unknown `type` or `status` value is 422 naming the parameter."""
    reply = await gw.call("GET", "/tokens" + query, actor="alice")
    assert reply.status == 422
    assert reply.body["field"] == field and reply.detail.startswith(field)


async def test_admin_revokes_any_token_of_the_workspace(gw: Gw) -> None:
    """An admin revokes a member's token: the response is the revoked record and it stops working."""
    made = await _mixed(gw)
    assert (await gw.use(made["bob"])).status == 200
    body = await gw.ok("DELETE", f"/tokens/{made['bob']['token']}", actor="alice")
    assert set(body) == TOKEN_FIELDS
    assert body["status"] == "revoked" and body["revoked_at"] is not None
    refused = await gw.use(made["bob"])
    assert refused.status == 401 and "revoked" in refused.detail
    assert (await gw.use(made["carol"])).status == 200


async def test_member_revokes_their_own_token_only(gw: Gw) -> None:
    """A member revokes their own token; another member's or a workspace token is 404 to them."""
    made = await _mixed(gw)
    assert (await gw.call("DELETE", f"/tokens/{made['carol']['token']}", actor="bob")).status == 404
    assert (await gw.call("DELETE", f"/tokens/{made['ws']['token']}", actor="bob")).status == 404
    assert (await gw.use(made["carol"])).status == 200
    body = await gw.ok("DELETE", f"/tokens/{made['bob']['token']}", actor="bob")
    assert body["status"] == "revoked"


async def test_admin_cannot_revoke_another_workspaces_token(gw: Gw) -> None:
    """A token of another workspace is 404 to an admin; the operator may revoke it."""
    made = await _mixed(gw)
    assert (await gw.call("DELETE", f"/tokens/{made['oscar']['token']}",
                          actor="alice")).status == 404
    assert (await gw.ok("DELETE", f"/tokens/{made['oscar']['token']}"))["status"] == "revoked"


async def test_revoking_an_unknown_token_is_not_found(gw: Gw) -> None:
    """Revoking a token that does not exist is 404 for the operator, an admin and a member."""
    for actor in (None, "alice", "bob"):
        reply = await gw.call("DELETE", "/tokens/tgw_doesnotexist000000000", actor=actor)
        assert reply.status == 404
        assert reply.headers["Content-Type"].startswith("application/problem+json")


async def test_revoking_twice_answers_with_the_revoked_record(gw: Gw) -> None:
    """A second revoke answers 200 with the record, status revoked, revoked_at unchanged."""
    made = await _mixed(gw)
    first = await gw.ok("DELETE", f"/tokens/{made['ws']['token']}", actor="alice")
    second = await gw.ok("DELETE", f"/tokens/{made['ws']['token']}", actor="alice")
    assert second == first and second["status"] == "revoked"


async def test_revoke_all_revokes_every_active_token_of_the_workspace(gw: Gw) -> None:
    """revoke-all answers the count and every token of the workspace stops working; others keep working."""
    made = await _mixed(gw)
    await gw.ok("DELETE", f"/tokens/{made['carol']['token']}", actor="alice")
    for key in ("ws", "bob"):
        assert (await gw.use(made[key])).status == 200
    body = await gw.ok("POST", "/tokens/revoke-all", {}, actor="alice")
    assert body == {"revoked": 2}
    for key in ("ws", "bob"):
        assert (await gw.use(made[key])).status == 401
    assert (await gw.use(made["oscar"], "/api/other/reports")).status == 200
    assert {t["status"] for t in await gw.tokens(actor="alice")} == {"revoked"}
    assert (await gw.ok("POST", "/tokens/revoke-all", actor="alice")) == {"revoked": 0}


async def test_revoke_all_of_one_type_leaves_the_other_type(gw: Gw) -> None:
    """revoke-all with a type revokes only that type (the member tokens tab's "revoke all")."""
    made = await _mixed(gw)
    assert await gw.ok("POST", "/tokens/revoke-all", {"type": "member"}, actor="alice") \
        == {"revoked": 2}
    assert (await gw.use(made["ws"])).status == 200
    assert (await gw.use(made["bob"])).status == 401
    assert await gw.ok("POST", "/tokens/revoke-all", {"type": "workspace"}, actor="alice") \
        == {"revoked": 1}
    assert (await gw.use(made["ws"])).status == 401


async def test_only_admins_revoke_all_and_the_operator_names_the_workspace(gw: Gw) -> None:
    """A member gets 403 for revoke-all; the operator revokes all of a named workspace."""
    made = await _mixed(gw)
    assert (await gw.call("POST", "/tokens/revoke-all", {}, actor="bob")).status == 403
    assert (await gw.call("POST", "/tokens/revoke-all", {"workspace": "other"},
                          actor="alice")).status == 403
    assert await gw.ok("POST", "/tokens/revoke-all", {"workspace": "other"}) == {"revoked": 2}
    assert (await gw.use(made["oscar"], "/api/other/reports")).status == 401
    assert (await gw.use(made["bob"])).status == 200
