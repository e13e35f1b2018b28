"""Users through a real gateway: add, list, remove (which revokes their tokens)."""

from __future__ import annotations

from tests.admin.support import Gw


async def test_admin_adds_lists_and_removes_users_of_their_own_workspace(gw: Gw) -> None:
    """An admin adds a user to their workspace, sees only that workspace's users, and removes one."""
    dave = await gw.add_user("dave", "member", actor="alice")
    assert dave["workspace"] == "default" and dave["role"] == "member"
    assert set(dave) == {"username", "role", "workspace", "created_at"}

    listed = await gw.ok("GET", "/users", actor="alice")
    assert [u["username"] for u in listed["users"]] == ["alice", "bob", "carol", "dave"]

    removed = await gw.ok("DELETE", "/users/dave", actor="alice")
    assert removed == {"username": "dave", "removed": True, "tokens_revoked": 0}
    listed = await gw.ok("GET", "/users", actor="alice")
    assert "dave" not in [u["username"] for u in listed["users"]]


async def test_operator_adds_users_to_any_workspace_and_lists_all(gw: Gw) -> None:
    """The operator adds users to a named workspace (else the default) and lists every workspace."""
    assert (await gw.add_user("tess", "admin", "third"))["workspace"] == "third"
    assert (await gw.add_user("dora", "member"))["workspace"] == "default"
    every = await gw.ok("GET", "/users")
    assert {u["username"] for u in every["users"]} == {
        "alice", "bob", "carol", "dora", "olga", "oscar", "tess"}
    third = await gw.ok("GET", "/users?workspace=third")
    assert [u["username"] for u in third["users"]] == ["tess"]


async def test_member_may_not_add_list_or_remove_users(gw: Gw) -> None:
    """A member gets 403 for every user-management call."""
    add = await gw.call("POST", "/users", {"username": "eve", "role": "member"}, actor="bob")
    lst = await gw.call("GET", "/users", actor="bob")
    rm = await gw.call("DELETE", "/users/carol", actor="bob")
    assert (add.status, lst.status, rm.status) == (403, 403, 403)
    assert "admin" in add.detail
    assert [u["username"] for u in (await gw.ok("GET", "/users?workspace=default"))["users"]] \
        == ["alice", "bob", "carol"]


async def test_admin_cannot_manage_users_of_another_workspace(gw: Gw) -> None:
    """An admin cannot add to, list or remove from another workspace (remove looks like 404)."""
    add = await gw.call("POST", "/users", {"username": "eve", "role": "member",
                                           "workspace": "other"}, actor="alice")
    assert add.status == 403
    assert (await gw.call("GET", "/users?workspace=other", actor="alice")).status == 403
    assert (await gw.call("DELETE", "/users/oscar", actor="alice")).status == 404
    assert "oscar" in [u["username"] for u in (await gw.ok("GET", "/users"))["users"]]


async def test_adding_an_existing_username_is_a_conflict(gw: Gw) -> None:
    """Usernames are unique across the deployment: a second add is 409, whichever workspace."""
    again = await gw.call("POST", "/users", {"username": "bob", "role": "admin",
                                             "workspace": "other"})
    assert again.status == 409
    assert again.headers["Content-Type"].startswith("application/problem+json")


async def test_removing_an_unknown_user_is_not_found(gw: Gw) -> None:
    """Removing a user who does not exist is 404 for the operator and an admin."""
    assert (await gw.call("DELETE", "/users/nobody")).status == 404
    assert (await gw.call("DELETE", "/users/nobody", actor="alice")).status == 404


async def test_removing_a_user_revokes_their_tokens_at_once(gw: Gw) -> None:
    """Removing a user revokes every token they own at once: the next proxied request is 401."""
    await gw.member_tokens(True, actor="alice")
    first = await gw.create("member", "one", actor="bob")
    second = await gw.create("member", "two", actor="bob")
    carols = await gw.create("member", "carol's", actor="carol")
    for created in (first, second, carols):
        assert (await gw.use(created)).status == 200  # now cached in the gateway

    removed = await gw.ok("DELETE", "/users/bob", actor="alice")
    assert removed["tokens_revoked"] == 2

    for created in (first, second):
        refused = await gw.use(created)
        assert refused.status == 401, refused.body
        assert "revoked" in refused.detail
        assert (await gw.token(created["token"]))["status"] == "revoked"
    assert (await gw.use(carols)).status == 200


async def test_removing_an_admin_keeps_the_workspace_tokens_they_created(gw: Gw) -> None:
    """Workspace tokens belong to the workspace, so removing the admin who made one keeps it working."""
    await gw.add_user("adam", "admin", actor="alice")
    ws_token = await gw.create("workspace", "ci", actor="adam")
    assert ws_token["owner"] == "workspace:default" and ws_token["created_by"] == "adam"
    assert (await gw.ok("DELETE", "/users/adam", actor="alice"))["tokens_revoked"] == 0
    assert (await gw.use(ws_token)).status == 200
