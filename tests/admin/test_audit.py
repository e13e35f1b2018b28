"""The audit log: lifecycle and security events with time, actor and subject."""

from __future__ import annotations

import datetime as dt
import json
import time

from tests.admin.support import Gw, cli_env, run_cli


async def test_every_lifecycle_event_is_audited_with_time_actor_and_subject(gw: Gw) -> None:
    """User added/removed, feature switched, token created/revoked, revoke-all and a revoked
    token presented each leave an event naming who did what to what, and when."""
    before = time.time() - 1
    await gw.add_user("dave", "member", actor="alice")
    await gw.member_tokens(True, actor="alice")
    mine = await gw.create("member", "mine", actor="bob")
    ws = await gw.create("workspace", "ci", actor="alice")
    await gw.ok("DELETE", f"/tokens/{mine['token']}", actor="bob")
    assert (await gw.use(mine)).status == 401
    await gw.ok("POST", "/tokens/revoke-all", {"type": "workspace"}, actor="alice")
    await gw.ok("DELETE", "/users/dave", actor="alice")
    await gw.member_tokens(False)
    after = time.time() + 1

    events = (await gw.ok("GET", "/audit?limit=50"))["events"]
    got = [(e["event"], e["actor"], e["subject"]) for e in events]
    expected = [
        ("member_tokens.disabled", "operator", "default"),
        ("user.removed", "alice", "dave"),
        ("token.revoke_all", "alice", "default"),
        ("token.presented_revoked", "bob", mine["token"]),
        ("token.revoked", "bob", mine["token"]),
        ("token.created", "alice", ws["token"]),
        ("token.created", "bob", mine["token"]),
        ("member_tokens.enabled", "alice", "default"),
        ("user.added", "alice", "dave"),
    ]
    assert got[:len(expected)] == expected
    for e in events[:len(expected)]:
        assert before <= dt.datetime.fromisoformat(e["at"]).timestamp() <= after
        assert e["workspace"] == "default"
    revoke_all = events[2]
    assert revoke_all["detail"] == {"type": "workspace", "revoked": 1}


async def test_audit_limit_returns_the_newest_events_first(gw: Gw) -> None:
    """`limit=N` returns the N newest events, newest first."""
    for name in ("u1", "u2", "u3"):
        await gw.add_user(name, "member")
    events = (await gw.ok("GET", "/audit?limit=2"))["events"]
    assert [e["subject"] for e in events] == ["u3", "u2"]
    assert len((await gw.ok("GET", "/audit"))["events"]) == 8  # seed's 5 and these 3


async def test_admins_read_their_workspaces_events_and_members_none(gw: Gw) -> None:
    """An admin reads only their workspace's events; a member gets 403."""
    await gw.add_user("dave", "member", actor="alice")
    await gw.add_user("otto", "member", actor="olga")
    alices = (await gw.ok("GET", "/audit?limit=100", actor="alice"))["events"]
    assert {e["workspace"] for e in alices} == {"default"}
    assert "otto" not in {e["subject"] for e in alices}
    olgas = (await gw.ok("GET", "/audit?limit=100", actor="olga"))["events"]
    assert olgas[0]["subject"] == "otto"
    assert (await gw.call("GET", "/audit", actor="bob")).status == 403
    assert (await gw.call("GET", "/audit?workspace=other", actor="alice")).status == 403


async def test_a_bad_limit_is_refused_naming_it(gw: Gw) -> None:
    """A limit that is not an integer from 1 to 1000 is 422 naming `limit`."""
    for limit in ("0", "1001", "-1", "ten", "1.5", "\u00b2", "\u0661", ""):
        reply = await gw.call("GET", f"/audit?limit={limit}")
        assert reply.status == 422, (limit, reply.body)
        assert reply.body["field"] == "limit"


async def test_the_cli_reads_the_same_audit_log(gw: Gw) -> None:
    """`tokengate audit --json` shows the same newest events as the API."""
    await gw.add_user("dave", "member", actor="alice")
    out = run_cli("audit", "--limit", "3", "--store", gw.redis_url, "--json",
                  env=cli_env(gw.gp.env["TOKENGATE_MASTER_KEY"]))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == (await gw.ok("GET", "/audit?limit=3"))["events"]


async def test_the_operator_reads_every_workspace_merged_or_one_by_name(gw: Gw) -> None:
    """Without `workspace` the operator reads every workspace's list merged newest first;
    with it, only that workspace's; a malformed name is 422 naming `workspace`."""
    await gw.add_user("dave", "member", actor="alice")
    await gw.add_user("otto", "member", actor="olga")
    await gw.add_user("erin", "member", actor="alice")
    merged = (await gw.ok("GET", "/audit?limit=3"))["events"]
    assert [(e["subject"], e["workspace"]) for e in merged] == [
        ("erin", "default"), ("otto", "other"), ("dave", "default")]
    others = (await gw.ok("GET", "/audit?limit=100&workspace=other"))["events"]
    assert [e["subject"] for e in others] == ["otto", "oscar", "olga"]
    assert (await gw.ok("GET", "/audit?workspace="))["events"][0]["subject"] == "erin"
    for bad in ("-x", "a b", "x" * 65):
        reply = await gw.call("GET", f"/audit?workspace={bad}")
        assert reply.status == 422, (bad, reply.body)
        assert reply.body["field"] == "workspace"
