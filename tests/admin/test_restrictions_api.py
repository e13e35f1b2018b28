"""Creating restricted tokens and setting a token's own limit through the admin API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.support import Gw

GRANTS = ["read-only", {"methods": ["POST"], "path": "/api/{workspace}/reports/{r}/runs"}]


async def test_a_restricted_token_lists_its_restrictions_and_is_audited(gw: Gw) -> None:
    """Scopes, networks and the own limit come back in the create response and the listing
    (normalised), and the token.created event records them; no secret anywhere but the
    create response."""
    created = await gw.create("workspace", "ci", actor="alice", scopes=GRANTS,
                              allowed_networks=["192.0.2.7", "2001:db8::/32"],
                              rate_limit={"limit": 10, "window_seconds": 1.5})
    expected = {"scopes": GRANTS, "allowed_networks": ["192.0.2.7/32", "2001:db8::/32"],
                "rate_limit": {"limit": 10, "window_seconds": 1.5}}
    assert {k: created[k] for k in expected} == expected
    listed = await gw.token(created["token"])
    assert {k: listed[k] for k in expected} == expected
    assert (listed["rolled_at"], listed["previous_secret_expires_at"]) == (None, None)
    events = (await gw.ok("GET", "/audit?limit=1", actor="alice"))["events"]
    assert events[0]["event"] == "token.created"
    assert {k: events[0]["detail"][k] for k in expected} == expected
    assert created["secret"] not in str(events)


async def test_a_member_narrows_their_own_token(gw: Gw) -> None:
    """Any user may restrict the member token they create (it only takes rights away)."""
    await gw.member_tokens(True, actor="alice")
    created = await gw.create("member", "mine", actor="bob", scopes=["read-only"],
                              rate_limit={"limit": 2, "window_seconds": 60})
    assert created["scopes"] == ["read-only"]
    assert (await gw.use(created)).status == 200
    assert (await gw.proxy(created["token"], created["secret"], method="POST")).status == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"scopes": "read-only"}, "scopes"),
    ({"scopes": []}, "scopes"),
    ({"scopes": ["read-write"]}, "scopes[0]"),
    ({"scopes": [{"methods": ["get"], "path": "/x"}]}, "scopes[0].methods"),
    ({"scopes": ["read-only", {"path": "x"}]}, "scopes[1].path"),
    ({"scopes": [{"class": "nightly"}]}, "scopes[0].class"),
    ({"scopes": [{"path": "/x", "class": "default"}]}, "scopes[0]"),
    ({"allowed_networks": ["10.0.0.0/33"]}, "allowed_networks[0]"),
    ({"allowed_networks": {"cidr": "10.0.0.0/8"}}, "allowed_networks"),
    ({"rate_limit": {"limit": 0, "window_seconds": 1}}, "rate_limit.limit"),
    ({"rate_limit": {"limit": 1}}, "rate_limit.window_seconds"),
    ({"rate_limit": [1, 60]}, "rate_limit"),
])
async def test_bad_restrictions_are_422_naming_the_field_and_create_nothing(
        gw: Gw, body: dict[str, Any], field: str) -> None:
    """Each wrong restriction is refused with its field named in `field` and the detail."""
    reply = await gw.call("POST", "/tokens", {"type": "workspace", "name": "x", **body},
                          actor="alice")
    assert reply.status == 422, reply.body
    assert reply.body["field"] == field
    assert reply.detail.startswith(field + ":")
    assert await gw.tokens(actor="alice") == []


async def test_only_admins_set_a_tokens_own_limit_and_only_in_their_workspace(gw: Gw) -> None:
    """Members get 403; another workspace's admin 404 (as for a token that does not exist);
    the operator may; a revoked token is 409; a missing body field is 422."""
    await gw.member_tokens(True, actor="alice")
    created = await gw.create("member", "bob's", actor="bob")
    path = f"/tokens/{created['token']}/rate-limit"
    limit = {"rate_limit": {"limit": 5, "window_seconds": 60}}
    assert (await gw.call("PUT", path, limit, actor="bob")).status == 403
    assert (await gw.call("PUT", path, limit, actor="olga")).status == 404
    assert (await gw.call("PUT", "/tokens/tgm_nothing/rate-limit", limit, actor="alice")
            ).status == 404
    missing = await gw.call("PUT", path, {}, actor="alice")
    assert (missing.status, missing.body["field"]) == (422, "rate_limit")
    assert (await gw.ok("PUT", path, limit))["rate_limit"] == limit["rate_limit"]
    events = (await gw.ok("GET", "/audit?limit=1", actor="alice"))["events"]
    assert (events[0]["event"], events[0]["detail"]["rate_limit"]) == (
        "token.rate_limit_set", limit["rate_limit"])
    await gw.ok("DELETE", f"/tokens/{created['token']}", actor="bob")
    assert (await gw.call("PUT", path, limit, actor="alice")).status == 409
