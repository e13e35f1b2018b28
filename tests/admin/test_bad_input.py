"""Bad input to the admin API: admin key, actor, JSON, field types, unknown fields."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.conftest import StartGw
from tests.admin.support import NO_BODY, Gw

BODY_CALLS = [
    ("POST", "/users"),
    ("PUT", "/settings/member-tokens"),
    ("PUT", "/settings/token-expiry"),
    ("POST", "/tokens"),
    ("POST", "/tokens/revoke-all"),
]
VALID: dict[tuple[str, str], Any] = {
    ("POST", "/users"): {"username": "zed", "role": "member"},
    ("PUT", "/settings/member-tokens"): {"enabled": True},
    ("PUT", "/settings/token-expiry"): {},
    ("POST", "/tokens"): {"type": "workspace", "name": "x"},
    ("POST", "/tokens/revoke-all"): {},
}
ALL_CALLS = BODY_CALLS + [
    ("GET", "/users"), ("DELETE", "/users/bob"), ("GET", "/settings"), ("GET", "/tokens"),
    ("DELETE", "/tokens/tgw_x"), ("GET", "/audit"),
]


@pytest.mark.parametrize("key", [None, "wrong-key", ""])
async def test_the_admin_api_needs_the_admin_key(start_gw: StartGw, key: str | None) -> None:
    """Without the right bearer admin key every call is 401 with a Bearer challenge."""
    # A budget above the number of calls: this test is about the verdict, not the throttle.
    gw = await start_gw(config_text="[admin.key_failures]\nlimit = 100\n")
    for method, path in ALL_CALLS:
        reply = await gw.call(method, path, admin_key=key)
        assert reply.status == 401, (method, path)
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert reply.headers["Content-Type"].startswith("application/problem+json")
    basic = await gw.call("GET", "/users", admin_key=None,
                          headers={"Authorization": "Basic dGVzdDp0ZXN0"})
    assert basic.status == 401


async def test_an_unknown_or_malformed_actor_is_forbidden(gw: Gw) -> None:
    """An actor header naming no user (or empty, or not a username) is 403 on every call."""
    for actor in ("nobody", "", "bad actor", "-dash", "x" * 65):
        for method, path in ALL_CALLS:
            reply = await gw.call(method, path, VALID.get((method, path), NO_BODY), actor=actor)
            assert reply.status == 403, (actor, method, path, reply.body)
            assert reply.detail == "unknown actor"


async def test_an_unknown_actor_with_a_valid_body_is_forbidden_not_applied(gw: Gw) -> None:
    """An unknown actor is refused before anything changes."""
    reply = await gw.call("POST", "/tokens", {"type": "workspace", "name": "x"}, actor="mallory")
    assert reply.status == 403
    reply = await gw.call("POST", "/users", {"username": "eve", "role": "admin"}, actor="mallory")
    assert reply.status == 403
    assert await gw.tokens() == []
    assert "eve" not in [u["username"] for u in (await gw.ok("GET", "/users"))["users"]]


async def test_a_removed_user_can_no_longer_act(gw: Gw) -> None:
    """Once removed, a user named as actor is unknown: 403."""
    await gw.ok("DELETE", "/users/carol", actor="alice")
    assert (await gw.call("GET", "/tokens", actor="carol")).status == 403


async def test_a_body_that_is_not_a_json_object_is_a_bad_request(gw: Gw) -> None:
    """A body that is not valid JSON, or not a JSON object, is 400 on every call that takes one."""
    for method, path in BODY_CALLS:
        for raw in (b"{not json", b"\xff\xfe", b"[1, 2]", b"\"text\"", b"null", b"{\"a\": 1"):
            reply = await gw.call(method, path, raw=raw, actor="alice")
            assert reply.status == 400, (method, path, raw, reply.body)
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert reply.body["status"] == 400 and reply.body["detail"]


WRONG = [
    ("POST", "/users", {"username": 5, "role": "member"}, "username"),
    ("POST", "/users", {"username": "dave", "role": "owner"}, "role"),
    ("POST", "/users", {"username": "dave"}, "role"),
    ("POST", "/users", {"username": "dave", "role": "member", "workspace": 3}, "workspace"),
    ("POST", "/users", {"username": "dave", "role": "member", "admin": True}, "admin"),
    ("POST", "/users", {"username": "da ve", "role": "member"}, "username"),
    ("PUT", "/settings/member-tokens", {"enabled": "yes"}, "enabled"),
    ("PUT", "/settings/member-tokens", {"enabled": 1}, "enabled"),
    ("PUT", "/settings/member-tokens", {}, "enabled"),
    ("PUT", "/settings/member-tokens", {"enabled": True, "force": True}, "force"),
    ("PUT", "/settings/token-expiry", {"max_expiry_days": "30"}, "max_expiry_days"),
    ("PUT", "/settings/token-expiry", {"days": 30}, "days"),
    ("POST", "/tokens", {"type": "workspace", "name": 7}, "name"),
    ("POST", "/tokens", {"type": "robot", "name": "x"}, "type"),
    ("POST", "/tokens", {"name": "x"}, "type"),
    ("POST", "/tokens", {"type": "workspace", "name": "x", "expires_in_days": "10"},
     "expires_in_days"),
    ("POST", "/tokens", {"type": "workspace", "name": "x", "expires_in_days": 1.5},
     "expires_in_days"),
    ("POST", "/tokens", {"type": "workspace", "name": "x", "expires_in_days": True},
     "expires_in_days"),
    ("POST", "/tokens", {"type": "workspace", "name": "x", "secret": "mine"}, "secret"),
    ("POST", "/tokens/revoke-all", {"type": "trusted"}, "type"),
    ("POST", "/tokens/revoke-all", {"type": 1}, "type"),
    ("POST", "/tokens/revoke-all", {"all": True}, "all"),
]


async def test_wrong_types_and_unknown_fields_are_422_naming_the_field(gw: Gw) -> None:
    """A field of the wrong type or value, a missing one or an unknown one is 422 naming it."""
    for method, path, body, field in WRONG:
        reply = await gw.call(method, path, body, actor="alice")
        assert reply.status == 422, (body, reply.body)
        assert reply.detail.startswith(field), (body, reply.detail)
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        if "field" in reply.body:
            assert reply.body["field"] == field
    assert await gw.tokens() == []


async def test_unknown_token_and_user_are_not_found(gw: Gw) -> None:
    """Revoking an unknown token and removing an unknown user are 404."""
    assert (await gw.call("DELETE", "/tokens/tgw_nope", actor="alice")).status == 404
    assert (await gw.call("DELETE", "/users/nope", actor="alice")).status == 404


async def test_a_wrong_method_is_a_problem_document(gw: Gw) -> None:
    """A method the route does not have is 405 as problem+json."""
    reply = await gw.call("PATCH", "/tokens", {})
    assert reply.status == 405
    assert reply.headers["Content-Type"].startswith("application/problem+json")
