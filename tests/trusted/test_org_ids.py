"""Numeric org ids end to end: set with trusted auth (admin API, CLI), shown, found by number."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.keys import generate_master_key
from tests.cli.conftest import Cli
from tests.trusted.conftest import V1, V2, StartTrusted, Trusted


async def test_org_id_is_set_shown_and_finds_the_workspace(ta: Trusted) -> None:
    """Enabling with org_id 0 shows it in trusted-auth and settings; org_id 0 (a number,
    or the string "0") then mints for that workspace."""
    key = await ta.enable("other", org_id=0)
    shown = await ta.admin("GET", "/workspaces/other/trusted-auth")
    assert shown.body["org_id"] == 0 and shown.body["secret_key"] == key
    assert (await ta.admin("GET", "/settings?workspace=other")).body["org_id"] == 0
    assert (await ta.admin("GET", "/settings")).body["org_id"] is None
    for org_id in (0, "0"):
        reply = await ta.mint(key, "oscar", org_id=org_id)
        assert reply.status == 200, reply.body
        assert (await ta.call(reply.body["token"], "/api/other/x")).status == 200
    assert ta.seen_headers()["x-tokengate-workspace"] == "other"
    form = await ta.post(V1, form={"secret_key": key, "username": "oscar", "orgid": "0"})
    assert form.status == 200, form.body


async def test_unknown_org_id_is_401(ta: Trusted) -> None:
    """A number no workspace holds (nor names) is the usual 401, as a wrong key."""
    key = await ta.enable(org_id=5)
    for org_id in (6, "6", 0):
        reply = await ta.mint(key, org_id=org_id)
        assert reply.status == 401, (org_id, reply.body)
        assert key not in reply.text


async def test_org_id_changes_on_an_enabled_workspace(ta: Trusted) -> None:
    """PUT with another org_id keeps the key (200), moves the number, and is audited."""
    key = await ta.enable(org_id=1)
    again = await ta.admin("PUT", "/workspaces/default/trusted-auth", {"org_id": 2})
    assert again.status == 200
    assert (again.body["secret_key"], again.body["org_id"]) == (key, 2)
    assert (await ta.mint(key, org_id=1)).status == 401
    assert (await ta.mint(key, org_id=2)).status == 200
    (event,) = await ta.audit("trusted_auth.org_id_set")
    assert event["detail"] == {"org_id": 2, "previous": 1}
    (enabled,) = await ta.audit("trusted_auth.enabled")
    assert enabled["detail"]["org_id"] == 1
    # The same id again, or no body at all, changes nothing and is not audited again.
    assert (await ta.admin("PUT", "/workspaces/default/trusted-auth", {"org_id": 2})).status == 200
    assert (await ta.admin("PUT", "/workspaces/default/trusted-auth")).body["org_id"] == 2
    assert len(await ta.audit("trusted_auth.org_id_set")) == 1


async def test_an_org_id_belongs_to_one_workspace(ta: Trusted) -> None:
    """Another workspace's org id is 409 naming no tenant; disabling frees it."""
    await ta.enable("other", org_id=9)
    taken = await ta.admin("PUT", "/workspaces/default/trusted-auth", {"org_id": 9})
    assert taken.status == 409 and taken.body["field"] == "org_id"
    assert taken.body["detail"] == "org_id: another workspace has this org id"  # not which
    assert (await ta.admin("GET", "/workspaces/default/trusted-auth")).body["enabled"] is False
    gone = await ta.admin("DELETE", "/workspaces/other/trusted-auth")
    assert gone.status == 200 and gone.body["org_id"] is None
    key = await ta.enable(org_id=9)
    assert (await ta.mint(key, org_id=9)).status == 200


async def test_an_admin_sets_only_their_own_workspaces_org_id(ta: Trusted) -> None:
    """alice (admin of default) may give default an org id, not other."""
    await ta.enable(actor="alice", org_id=3)
    refused = await ta.admin("PUT", "/workspaces/other/trusted-auth", {"org_id": 4},
                             actor="alice")
    assert refused.status == 403
    assert (await ta.admin("GET", "/settings?workspace=other")).body["org_id"] is None


@pytest.mark.parametrize(("body", "status"), [
    ({"org_id": -1}, 422), ({"org_id": 2**31}, 422), ({"org_id": "5"}, 422),
    ({"org_id": True}, 422), ({"org_id": 1.5}, 422), ({"orgid": 5}, 422),
    ([5], 400),
])
async def test_bad_org_ids_are_refused(ta: Trusted, body: Any, status: int) -> None:
    """An org id is an integer in 0..2**31-1; anything else is refused naming the field,
    and trusted authentication stays disabled."""
    reply = await ta.admin("PUT", "/workspaces/default/trusted-auth", body)
    assert reply.status == status, reply.body
    if status == 422:
        assert reply.body["field"] in ("org_id", "orgid")
    assert (await ta.admin("GET", "/workspaces/default/trusted-auth")).body["enabled"] is False


async def test_a_number_that_no_workspace_holds_still_names_a_workspace(
        ta: Trusted) -> None:
    """org_id 42 finds a workspace named "42" until a workspace takes org id 42, which wins."""
    await ta.add_user("nora", "member", "42")
    named_key = await ta.enable("42")
    assert (await ta.mint(named_key, "nora", org_id=42)).status == 200
    other_key = await ta.enable("other", org_id=42)
    assert (await ta.mint(named_key, "nora", org_id=42)).status == 401
    assert (await ta.mint(other_key, "oscar", org_id=42)).status == 200
    assert (await ta.mint(named_key, "nora", org_id="42")).status == 401


async def test_cli_enables_with_an_org_id(start_trusted: StartTrusted, redis_url: str) -> None:
    """``trusted-auth enable --org-id`` sets the id the gateway's token requests find;
    show prints it; a bad id or --org-id with show is a usage error (exit 2)."""
    cli = Cli(redis_url, generate_master_key())
    enabled = cli.json("trusted-auth", "enable", "--workspace", "other", "--org-id", "77")
    assert enabled["org_id"] == 77 and enabled["enabled"] is True
    shown = cli.run("trusted-auth", "show", "--workspace", "other")
    assert shown.returncode == 0 and "(org id 77)" in shown.stdout
    assert "--org-id" in cli.fails("trusted-auth", "enable", "--workspace", "other",
                                   "--org-id", "-1", code=2)
    assert "--org-id goes with enable" in cli.fails("trusted-auth", "show", "--workspace",
                                                    "other", "--org-id", "1", code=2)
    bad = cli.run("trusted-auth", "enable", "--workspace", "other", "--org-id", "x")
    assert bad.returncode == 2 and "argument --org-id: invalid int value" in bad.stderr
    taken = cli.fails("trusted-auth", "enable", "--workspace", "default", "--org-id", "77")
    assert taken == "tokengate: org_id: another workspace has this org id"
    ta = await start_trusted(master_key=cli.master_key)
    reply = await ta.mint(enabled["secret_key"], "oscar", org_id=77)
    assert reply.status == 200, reply.body
    assert (await ta.call(reply.body["token"], "/api/other/x")).status == 200


async def test_v2_and_v1_name_the_org_differently(ta: Trusted) -> None:
    """v2 reads org_id; v1 reads orgid (or org_id) -- and not v2's name auto_create."""
    key = await ta.enable("other", org_id=11)
    assert (await ta.post(V2, json_body={"username": "oscar", "secret_key": key,
                                         "orgid": 11})).status == 401
    v1 = {"secret_key": key, "username": "newcomer", "orgid": "11"}
    assert (await ta.post(V1, form={**v1, "auto_create": "true"})).status == 404
    assert (await ta.post(V1, form={**v1, "autocreate": "true"})).status == 200
