"""Concurrency: revoke-all racing with creates, and revocation across gateway processes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.admin.conftest import StartGw, seed
from tests.admin.support import Gw

# Revoked tokens are presented on purpose below; lift the per-address failure
# budget and the per-user quota so the answers are 401/200, never 429.
NO_LIMITS = """
[rate_limit]
limit = 1000000
[rate_limit.auth_failures]
limit = 1000000
"""
BOUND = 1.0  # seconds: a revocation is effective on every process within this


async def test_revoke_all_racing_with_creates_loses_neither(start_gw: StartGw) -> None:
    """Under concurrent creates, every token created before a revoke-all is revoked, every one
    created after it works, and each one in between is consistently one or the other."""
    gw = await start_gw(config_text=NO_LIMITS)
    await seed(gw)
    await gw.member_tokens(True, actor="alice")
    made: list[tuple[float, float, dict[str, Any]]] = []  # (sent, answered, created)
    revoke: dict[str, Any] = {}
    enough_before = asyncio.Event()

    async def creator(worker: int) -> None:
        for i in range(15):
            actor, kind = (("alice", "workspace"), ("bob", "member"), ("carol", "member"))[i % 3]
            sent = time.monotonic()
            created = await gw.create(kind, f"w{worker}-{i}", actor=actor)
            made.append((sent, time.monotonic(), created))
            if len(made) >= 20:
                enough_before.set()

    async def revoker() -> None:
        await enough_before.wait()
        revoke["sent"] = time.monotonic()
        revoke["body"] = await gw.ok("POST", "/tokens/revoke-all", {}, actor="alice")
        revoke["answered"] = time.monotonic()

    await asyncio.gather(*(creator(w) for w in range(6)), revoker())
    # and a few surely after it
    for i in range(3):
        sent = time.monotonic()
        made.append((sent, time.monotonic(), await gw.create("workspace", f"late{i}",
                                                             actor="alice")))

    listed = {t["token"]: t for t in await gw.tokens(actor="alice")}
    assert set(listed) == {c["token"] for _, _, c in made}, "a created token went missing"
    before = after = between = 0
    for sent, answered, created in made:
        status = listed[created["token"]]["status"]
        reply = await gw.use(created)
        assert reply.status in (200, 401), reply.body
        works = reply.status == 200
        why = (created["token"], status, reply.status, reply.body)
        if answered < revoke["sent"]:
            before += 1
            assert status == "revoked" and not works, why
        elif sent > revoke["answered"]:
            after += 1
            assert status == "active" and works, why
        else:
            between += 1
            assert (status == "active") == works, why
    revoked = sum(1 for t in listed.values() if t["status"] == "revoked")
    assert revoke["body"] == {"revoked": revoked}
    assert before >= 20 and after >= 3, (before, between, after)


def _credential_loads(metrics_text: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "tokengate_store_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count") and sample.labels.get("operation") \
                        == "load_credential":
                    return sample.value
    return 0.0


async def _wait_refused(gw: Gw, created: dict[str, Any], started: float) -> float:
    """Poll the proxy in short steps until the token is refused; seconds since ``started``."""
    while True:
        reply = await gw.use(created)
        elapsed = time.monotonic() - started
        if reply.status == 401:
            return elapsed
        assert reply.status == 200, reply.body
        assert elapsed < BOUND, f"still accepted {elapsed:.3f}s after the revocation"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("how", ["revoke", "revoke-all", "remove-user", "member-tokens-off"])
async def test_a_revocation_through_one_process_reaches_another_within_a_second(
        start_gw: StartGw, how: str) -> None:
    """A token cached by two gateways on one Redis and revoked through one (by revoke,
    revoke-all, removing its user or switching member tokens off) is refused by the other
    within 1 second."""
    first = await start_gw(config_text=NO_LIMITS)
    second = await start_gw(config_text=NO_LIMITS,
                            master_key=first.gp.env["TOKENGATE_MASTER_KEY"])
    await seed(first)
    await first.member_tokens(True, actor="alice")
    created = await first.create("member", "shared", actor="bob")
    for gw in (first, second):
        for _ in range(3):
            assert (await gw.use(created)).status == 200
    async with second.session.get(second.gp.admin + "/metrics") as resp:
        assert _credential_loads(await resp.text()) == 1, "the second process did not cache it"

    started = time.monotonic()
    if how == "revoke":
        await first.ok("DELETE", f"/tokens/{created['token']}", actor="alice")
    elif how == "revoke-all":
        await first.ok("POST", "/tokens/revoke-all", {"type": "member"}, actor="alice")
    elif how == "remove-user":
        await first.ok("DELETE", "/users/bob", actor="alice")
    else:
        await first.member_tokens(False, actor="alice")
    elapsed = await _wait_refused(second, created, started)
    assert elapsed <= BOUND
    assert (await first.use(created)).status == 401
