"""Workspace tokens: created by admins and the operator only, named, acting as admin."""

from __future__ import annotations

from tests.admin.support import Gw


async def test_admin_creates_a_workspace_token_that_acts_with_admin_access(gw: Gw) -> None:
    """An admin's workspace token authenticates with X-Tokengate-Role: admin in their workspace."""
    created = await gw.create("workspace", "nightly archive job", actor="alice")
    assert created["type"] == "workspace" and created["status"] == "active"
    assert created["workspace"] == "default" and created["created_by"] == "alice"
    assert created["token"].startswith("tgw_") and created["secret"].startswith("tgs_")

    reply = await gw.use(created)
    assert reply.status == 200
    assert gw.last_seen_header("X-Tokengate-Role") == "admin"
    assert gw.last_seen_header("X-Tokengate-Token-Type") == "workspace"
    assert gw.last_seen_header("X-Tokengate-Workspace") == "default"
    assert gw.last_seen_header("X-Tokengate-Token") == created["token"]
    assert "authorization" not in {k.lower() for k, _ in gw.upstream.seen[-1].headers}


async def test_operator_creates_workspace_tokens_in_the_named_or_default_workspace(gw: Gw) -> None:
    """The operator's workspace token goes to the workspace in the body, else the default one."""
    named = await gw.create("workspace", "ops", workspace="other")
    default = await gw.create("workspace", "ops")
    assert (named["workspace"], named["created_by"]) == ("other", "operator")
    assert (default["workspace"], default["created_by"]) == ("default", "operator")
    assert (await gw.use(named, "/api/other/reports")).status == 200
    assert gw.last_seen_header("X-Tokengate-Workspace") == "other"
    assert gw.last_seen_header("X-Tokengate-Role") == "admin"


async def test_members_cannot_create_workspace_tokens(gw: Gw) -> None:
    """A member asking for a workspace token gets 403 saying only an admin may."""
    reply = await gw.call("POST", "/tokens", {"type": "workspace", "name": "x"}, actor="bob")
    assert reply.status == 403
    assert "admin" in reply.detail
    assert await gw.tokens() == []


async def test_admin_cannot_create_a_workspace_token_in_another_workspace(gw: Gw) -> None:
    """An admin naming another workspace is refused with 403."""
    reply = await gw.call("POST", "/tokens", {"type": "workspace", "name": "x",
                                              "workspace": "other"}, actor="alice")
    assert reply.status == 403


async def test_a_workspace_may_have_any_number_of_workspace_tokens(gw: Gw) -> None:
    """Many workspace tokens, even with the same display name, all exist and all work."""
    made = [await gw.create("workspace", "same name", actor="alice") for _ in range(12)]
    assert len({m["token"] for m in made}) == 12
    for m in made:
        assert (await gw.use(m)).status == 200
    assert len(await gw.tokens("?type=workspace", actor="alice")) == 12


async def test_display_names_of_1_to_64_printable_characters_are_accepted(gw: Gw) -> None:
    """Any display name of 1-64 printable characters is kept exactly."""
    for name in ("x", "A" * 64, "Nightly job #3 (prod)", "Ünïcödé ✓ 名前"):
        created = await gw.create("workspace", name, actor="alice")
        assert created["name"] == name
        assert (await gw.token(created["token"]))["name"] == name


async def test_display_names_outside_the_rules_are_refused_naming_the_field(gw: Gw) -> None:
    """An empty, too long, non-printable or space-padded display name is 422 naming `name`."""
    for name in ("", "A" * 65, "bell\x07", "tab\there", "line\nbreak", " padded ", "\u200b"):
        reply = await gw.call("POST", "/tokens", {"type": "workspace", "name": name}, actor="alice")
        assert reply.status == 422, (name, reply.body)
        assert reply.detail.startswith("name")
    assert await gw.tokens() == []


async def test_a_workspace_token_needs_a_name(gw: Gw) -> None:
    """Leaving out the display name is 422 naming `name`."""
    reply = await gw.call("POST", "/tokens", {"type": "workspace"}, actor="alice")
    assert reply.status == 422
    assert reply.body["field"] == "name"
