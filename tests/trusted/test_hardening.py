"""Trusted authentication under hostile traffic, against real gateway processes.

Each test replays an attack from issue 11: a removed user's bearer revived by
re-adding the user, parallel secret_key guessing, rotating IPv6 addresses
inside one /64, and key guessing that flushes a workspace's audit log.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import urllib.request
from typing import Any

from tests.conftest import GatewayProcess
from tests.trusted.conftest import V2, Reply, StartTrusted, Trusted
from tests.trusted.test_cache import cached_on_two, refused_within

WRONG = "11111111-2222-4333-8444-555555555555"
BEHIND_PROXY = '[proxy]\ntrusted_proxies = ["127.0.0.1"]\n'


def config(limit: int, *, audit_per_interval: int = 10) -> str:
    """A config with a secret_key budget of ``limit`` per minute, behind a trusted proxy."""
    return (BEHIND_PROXY + "[trusted_auth]\n"
            f"key_failures = {{ limit = {limit}, window_seconds = 60 }}\n"
            f"audit_events_per_interval = {audit_per_interval}\n")


def metric(gp: GatewayProcess, name: str) -> float:
    """A counter's value (``name`` with its labels) from the admin listener's /metrics."""
    with urllib.request.urlopen(gp.admin + "/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def mint_from(t: Trusted, source: str, key: str, org_id: str = "default",
                    username: str = "bob") -> Reply:
    """A v2 token request as forwarded by the trusted proxy for client ``source``."""
    return await t.post(V2, json_body={"username": username, "secret_key": key,
                                       "org_id": org_id},
                        headers={"X-Forwarded-For": source})


async def events(t: Trusted, query: str = "") -> list[dict[str, Any]]:
    """The operator's view of the audit log (``query`` e.g. ``&workspace=default``)."""
    reply = await t.admin("GET", "/audit?limit=1000" + query)
    assert reply.status == 200, reply.body
    found: list[dict[str, Any]] = reply.body["events"]
    return found


# --- 6. removing a user kills their bearers for good -------------------------


async def test_a_re_added_user_does_not_revive_the_old_bearer(
    start_trusted: StartTrusted,
) -> None:
    """Deleting mo and adding mo again (as admin) leaves mo's old 24 h bearer at 401, on the
    process that had it cached and on a fresh one; a bearer for the new mo works as admin."""
    ta = await start_trusted()
    key = await ta.enable()
    await ta.add_user("mo", "member")
    old = await ta.bearer(key, "mo", validity_time_in_sec=86400)
    assert (await ta.call(old)).status == 200
    assert (await ta.admin("DELETE", "/users/mo")).status == 200
    await ta.add_user("mo", "admin")
    assert await refused_within(ta, old)
    for _ in range(3):
        reply = await ta.call(old)
        assert reply.status == 401, reply.body
    fresh = await start_trusted(seed=False, master_key=ta.gp.env["TOKENGATE_MASTER_KEY"])
    assert (await fresh.call(old)).status == 401
    new = await ta.bearer(key, "mo")
    assert (await fresh.call(new)).status == 200
    assert fresh.seen_headers()["x-tokengate-role"] == "admin"


async def test_a_process_that_cached_the_bearer_refuses_it_after_re_adding(
    start_trusted: StartTrusted,
) -> None:
    """A second gateway that had bob's bearer cached refuses it once bob is removed and
    re-added (as admin), and keeps refusing it."""
    a, b, token = await cached_on_two(start_trusted)
    assert (await a.admin("DELETE", "/users/bob")).status == 200
    await a.add_user("bob", "admin")
    assert await refused_within(b, token)
    for _ in range(3):
        assert (await b.call(token)).status == 401
    assert (await a.call(token)).status == 401


# --- 9. parallel guessing cannot outrun the budget ---------------------------


async def test_parallel_wrong_keys_then_the_right_key_is_throttled(
    start_trusted: StartTrusted,
) -> None:
    """90 concurrent wrong secret_keys get only the budget's 20 comparisons, and the right
    key from the same address right after is 429, not a token."""
    ta = await start_trusted(config_text=config(20))
    key = await ta.enable()
    replies = await asyncio.gather(*(mint_from(ta, "127.0.1.9", WRONG) for _ in range(90)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [401] * 20 + [429] * 70
    # Only 20 keys were compared at all: a right one among the other 70 would not have won.
    assert metric(ta.gp, 'tokengate_trusted_key_failures_total{workspace="default"}') == 20
    right = await mint_from(ta, "127.0.1.9", key)
    assert right.status == 429 and "token" not in right.body
    assert int(right.headers["Retry-After"]) >= 1
    assert (await mint_from(ta, "127.0.1.10", key)).status == 200  # another client is not
    assert metric(ta.gp, "tokengate_trusted_key_throttled_total") == 71


async def test_right_keys_give_their_reserved_attempt_back(start_trusted: StartTrusted) -> None:
    """A backend minting many tokens with the right key never runs out of budget."""
    ta = await start_trusted(config_text=config(3))
    key = await ta.enable()
    for _ in range(10):
        assert (await mint_from(ta, "127.0.1.9", key)).status == 200
    assert (await mint_from(ta, "127.0.1.9", WRONG)).status == 401


async def test_one_ipv6_64_shares_one_budget(start_trusted: StartTrusted) -> None:
    """Addresses rotated inside one IPv6 /64 share the secret_key budget; another /64 does
    not."""
    ta = await start_trusted(config_text=config(3))
    key = await ta.enable()
    for host in (1, 2, 3):
        assert (await mint_from(ta, f"2001:db8:1:2::{host}", WRONG)).status == 401
    assert (await mint_from(ta, "2001:db8:1:2::4", WRONG)).status == 429
    assert (await mint_from(ta, "2001:db8:1:2:ffff:1:2:3", key)).status == 429
    assert (await mint_from(ta, "2001:db8:1:3::1", key)).status == 200
    refused = [e for e in await events(ta, "&workspace=default")
               if e["event"] == "trusted_auth.key_refused"]
    assert [e["detail"]["client"] for e in refused] == ["2001:db8:1:2::/64"]


# --- 7. key guessing cannot wipe an audit log ----------------------------------


async def test_key_guessing_from_125_addresses_cannot_flush_a_workspace_audit(
    start_trusted: StartTrusted,
) -> None:
    """125 sources guessing keys for an existing workspace and a non-existent org_id leave
    its earlier events in place, add a bounded number of aggregated events to it, and
    write nothing to any tenant's list for the non-existent one."""
    per_interval = 5
    ta = await start_trusted(config_text=config(3, audit_per_interval=per_interval))
    await ta.enable()
    await ta.add_user("mo", "member")
    before = await events(ta, "&workspace=default")
    assert {e["event"] for e in before} >= {"user.added", "trusted_auth.enabled"}

    sources = [f"127.0.1.{i}" for i in range(1, 126)]
    work = [(s, org) for _ in range(15) for s in sources for org in ("default", "nowhere")]
    gate = asyncio.Semaphore(25)
    seen: dict[int, int] = {}

    async def guess(source: str, org: str) -> None:
        async with gate:
            status = (await mint_from(ta, source, WRONG, org)).status
            seen[status] = seen.get(status, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(guess(s, org) for s, org in work))
    intervals = 1 + math.floor((time.monotonic() - started) / 60)
    assert set(seen) == {401, 429} and sum(seen.values()) == len(work)
    assert seen[401] <= 3 * len(sources)  # the budget holds for every source

    after = await events(ta, "&workspace=default")
    assert after[-len(before):] == before  # nothing earlier was pushed out
    new = after[:len(after) - len(before)]
    assert {e["event"] for e in new} == {"trusted_auth.key_refused"}
    assert len(new) <= per_interval * intervals
    assert {e["workspace"] for e in new} == {"default"}
    assert all(e["detail"]["org_id"] == "default" for e in new)

    everything = await events(ta)
    nowhere = [e for e in everything if e["detail"].get("org_id") == "nowhere"]
    assert nowhere and {e["workspace"] for e in nowhere} == {""}  # the security list only
    assert len(nowhere) <= per_interval * intervals
    assert [e for e in await events(ta, "&workspace=nowhere")] == []
    other = await events(ta, "&workspace=other")
    assert {e["event"] for e in other} == {"user.added"}
    assert metric(ta.gp, "tokengate_audit_events_suppressed_total") > 0


async def test_admins_read_their_own_key_refusals_but_not_the_security_list(
    start_trusted: StartTrusted,
) -> None:
    """An admin sees refused keys for their workspace; refusals naming a workspace without
    trusted authentication reach only the operator."""
    ta = await start_trusted(config_text=config(5))
    await ta.enable()
    assert (await mint_from(ta, "127.0.1.1", WRONG)).status == 401
    assert (await mint_from(ta, "127.0.1.2", WRONG, "other")).status == 401
    alices = (await ta.admin("GET", "/audit?limit=100", actor="alice")).body["events"]
    assert [e["detail"]["client"] for e in alices
            if e["event"] == "trusted_auth.key_refused"] == ["127.0.1.1"]
    olgas = (await ta.admin("GET", "/audit?limit=100", actor="olga")).body["events"]
    assert "trusted_auth.key_refused" not in {e["event"] for e in olgas}
    security = [e for e in await events(ta) if e["workspace"] == ""]
    assert [(e["subject"], e["detail"]["reason"]) for e in security] == [("other", "disabled")]
