"""Bearer tokens end to end: mint, use upstream, expire, revoke, disable, re-enable."""

from __future__ import annotations

import asyncio
import re

from tests.trusted.conftest import REVOKE, V2, StartTrusted, Trusted

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
V2_FIELDS = {"token", "creation_time_in_millis", "expiration_time_in_millis",
             "valid_for_user_id", "valid_for_username"}


async def test_minted_token_calls_upstream_as_the_user(ta: Trusted) -> None:
    """A bearer minted with the key reaches the upstream as its user, never as the bearer."""
    key = await ta.enable()
    assert UUID4.fullmatch(key)
    token = await ta.bearer(key, "bob")
    assert token.startswith("tgb_")
    reply = await ta.call(token)
    assert reply.status == 200, reply.body
    assert "X-RateLimit-Remaining" in reply.headers
    seen = ta.seen_headers()
    assert seen["x-tokengate-user"] == "bob"
    assert seen["x-tokengate-role"] == "member"
    assert seen["x-tokengate-token-type"] == "trusted"
    assert seen["x-tokengate-workspace"] == "default"
    assert seen["x-tokengate-token"].startswith("tgt_") and token not in seen.values()
    assert "authorization" not in seen
    admin_token = await ta.bearer(key, "alice")
    assert (await ta.call(admin_token)).status == 200
    assert ta.seen_headers()["x-tokengate-role"] == "admin"


async def test_v2_response_has_exactly_the_thoughtspot_fields(ta: Trusted) -> None:
    """The v2 response carries the five documented fields with their types and the validity."""
    key = await ta.enable()
    reply = await ta.mint(key, "bob", validity_time_in_sec=120)
    assert reply.status == 200, reply.body
    body = reply.body
    assert set(body) == V2_FIELDS
    assert isinstance(body["token"], str)
    assert isinstance(body["creation_time_in_millis"], int)
    assert body["expiration_time_in_millis"] - body["creation_time_in_millis"] == 120_000
    assert UUID.fullmatch(body["valid_for_user_id"])
    assert body["valid_for_username"] == "bob"
    assert reply.headers["Cache-Control"] == "no-store"
    again = await ta.mint(key, "bob")
    assert again.body["valid_for_user_id"] == body["valid_for_user_id"]
    assert again.body["expiration_time_in_millis"] - again.body["creation_time_in_millis"] \
        == 300_000


async def test_token_expires_after_its_validity(ta: Trusted) -> None:
    """A token minted for 1 s works at once and is refused once the second has passed."""
    key = await ta.enable()
    token = await ta.bearer(key, "bob", validity_time_in_sec=1)
    assert (await ta.call(token)).status == 200
    await asyncio.sleep(1.1)
    reply = await ta.call(token)
    assert reply.status == 401
    assert "WWW-Authenticate" in reply.headers


async def test_revoke_with_the_token_itself(ta: Trusted) -> None:
    """Revoking with the bearer in the Authorization header stops it at once."""
    key = await ta.enable()
    token = await ta.bearer(key)
    reply = await ta.post(REVOKE, json_body={"token": token},
                          headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 204, reply.body
    assert (await ta.call(token)).status == 401
    again = await ta.post(REVOKE, json_body={"token": token},
                          headers={"Authorization": f"Bearer {token}"})
    assert again.status == 401


async def test_a_bearer_revokes_only_itself(ta: Trusted) -> None:
    """A bearer token cannot revoke another one; unauthenticated revokes are refused."""
    key = await ta.enable()
    mine, other = await ta.bearer(key, "bob"), await ta.bearer(key, "alice")
    reply = await ta.post(REVOKE, json_body={"token": other},
                          headers={"Authorization": f"Bearer {mine}"})
    assert reply.status == 403
    assert (await ta.post(REVOKE, json_body={"token": other})).status == 401
    assert (await ta.call(other)).status == 200


async def test_revoke_with_the_key(ta: Trusted) -> None:
    """The workspace key revokes its tokens; another workspace's key cannot."""
    key, other_key = await ta.enable(), await ta.enable("other")
    token = await ta.bearer(key)
    refused = await ta.post(REVOKE, json_body={"token": token, "secret_key": other_key,
                                               "org_id": "other"})
    assert refused.status == 404
    assert (await ta.call(token)).status == 200
    reply = await ta.post(REVOKE, json_body={"token": token, "secret_key": key})
    assert reply.status == 204, reply.body
    assert (await ta.call(token)).status == 401
    events = await ta.audit("trusted_auth.token_revoked")
    assert events and events[0]["subject"].startswith("tgt_")


async def test_disable_refuses_the_key_and_its_tokens_and_reenable_rotates(ta: Trusted) -> None:
    """Disabling stops the old key and its tokens at once; re-enabling makes a new, working key."""
    key = await ta.enable()
    token = await ta.bearer(key)
    assert (await ta.call(token)).status == 200
    reply = await ta.admin("DELETE", "/workspaces/default/trusted-auth")
    assert reply.status == 200 and reply.body["enabled"] is False
    assert (await ta.call(token)).status == 401
    assert (await ta.mint(key)).status == 401
    shown = await ta.admin("GET", "/workspaces/default/trusted-auth")
    assert shown.body["enabled"] is False and shown.body["secret_key"] is None

    new_key = await ta.enable()
    assert new_key != key
    assert (await ta.mint(key)).status == 401
    assert (await ta.call(token)).status == 401
    new_token = await ta.bearer(new_key)
    assert (await ta.call(new_token)).status == 200
    events = [e["event"] for e in (await ta.admin("GET", "/audit?limit=100")).body["events"]]
    assert events.count("trusted_auth.enabled") == 2 and "trusted_auth.disabled" in events


async def test_key_of_another_workspace_is_refused(ta: Trusted) -> None:
    """A key works only for its own workspace, and only for that workspace's users."""
    key, other_key = await ta.enable(), await ta.enable("other")
    assert (await ta.mint(other_key, "bob")).status == 401
    assert (await ta.mint(key, "oscar", org_id="other")).status == 401
    assert (await ta.mint(other_key, "bob", org_id="other")).status == 404
    token = await ta.bearer(other_key, "oscar", org_id="other")
    assert (await ta.call(token, "/api/other/reports")).status == 200
    assert ta.seen_headers()["x-tokengate-workspace"] == "other"
    assert (await ta.call(token, "/api/default/reports")).status == 403


async def test_integer_org_id_names_the_workspace(ta: Trusted) -> None:
    """ThoughtSpot's integer org ids name the workspace of the same digits."""
    await ta.add_user("ivan", "member", "42")
    key = await ta.enable("42")
    assert (await ta.mint(key, "ivan", org_id=42)).status == 200
    assert (await ta.mint(key, "ivan", org_id="42")).status == 200
    assert (await ta.mint(key, "ivan")).status == 401


async def test_auto_create_makes_a_member_and_audits_it(ta: Trusted) -> None:
    """An unknown user is 404, unless auto_create makes them a member of the workspace."""
    key = await ta.enable()
    missing = await ta.mint(key, "newbie")
    assert missing.status == 404
    token = await ta.bearer(key, "newbie", auto_create=True)
    assert (await ta.call(token)).status == 200
    assert ta.seen_headers()["x-tokengate-role"] == "member"
    users = (await ta.admin("GET", "/users")).body["users"]
    assert {"username": "newbie", "role": "member", "workspace": "default"}.items() <= \
        next(u for u in users if u["username"] == "newbie").items()
    (event,) = [e for e in await ta.audit("user.added") if e["subject"] == "newbie"]
    assert event["actor"] == "trusted-auth" and event["detail"]["auto_create"] is True
    assert (await ta.bearer(key, "newbie", auto_create=True))
    taken = await ta.mint(key, "oscar", auto_create=True)
    # Usernames are unique across the deployment, so the name is taken; the
    # answer must not say where (no other tenant is named or hinted at).
    assert taken.status == 409
    assert "workspace" not in str(taken.body)


async def test_bearer_tokens_skip_clone_and_invite_rules(ta: Trusted) -> None:
    """The default deny rules for workspace and member tokens do not apply to trusted ones."""
    key = await ta.enable()
    token = await ta.bearer(key)
    assert (await ta.call(token, "/api/default/reports/r1/runs/u9/clone", "POST")).status == 200
    assert (await ta.call(token, "/api/default/invites", "POST")).status == 200


async def test_trusted_tokens_share_one_window_per_user(start_trusted: StartTrusted) -> None:
    """Two bearers of one user draw on the same rate-limit window."""
    ta = await start_trusted(extra_env={"TOKENGATE_RATE_LIMIT_LIMIT": "2"})
    key = await ta.enable()
    first, second = await ta.bearer(key), await ta.bearer(key)
    assert (await ta.call(first)).status == 200
    assert (await ta.call(second)).status == 200
    limited = await ta.call(first)
    assert limited.status == 429 and "Retry-After" in limited.headers
    assert (await ta.call(await ta.bearer(key, "alice"))).status == 200


async def test_metrics_count_minted_tokens_by_workspace(ta: Trusted) -> None:
    """Minted tokens show in the workspace's counter on /metrics."""
    key = await ta.enable()
    await ta.bearer(key)
    await ta.bearer(key)
    async with ta.session.get(ta.gp.admin + "/metrics") as resp:
        text = await resp.text()
    assert 'tokengate_trusted_tokens_minted_total{workspace="default"} 2.0' in text


async def test_v2_path_is_public_but_other_methods_are_not(ta: Trusted) -> None:
    """Only POST on the token path skips authentication; a GET goes through the proxy's 401."""
    async with ta.session.get(ta.gp.proxy + V2) as resp:
        assert resp.status == 401
