"""Rolling a secret through real gateway processes on one Redis: both secrets work during
the grace period, then the old one is refused on every replica within a second of its end."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from tests.conftest import GatewayProcess, RecordingUpstream
from tests.proxy.restricted import Plane, start_plane

BOUND = 1.0  # the contract: refused everywhere within 1 s of the grace period's end
# The old secret's refusals must not throttle this client's address (that is another test).
NO_THROTTLE = {"TOKENGATE_RATE_LIMIT_AUTH_FAILURES_LIMIT": "100000",
               "TOKENGATE_RATE_LIMIT_LIMIT": "100000"}


@pytest.fixture
async def replicas(gateway_factory: Callable[..., GatewayProcess], redis_url: str,
                   upstream: RecordingUpstream) -> AsyncIterator[tuple[Plane, Plane]]:
    """Two gateway processes on one Redis, with alice (admin) and bob (member)."""
    async with aiohttp.ClientSession() as session:
        first = start_plane(gateway_factory, redis_url, upstream, session, **NO_THROTTLE)
        second = start_plane(gateway_factory, redis_url, upstream, session, replica_of=first,
                             **NO_THROTTLE)
        await first.add_user("alice", "admin")
        await first.add_user("bob", "member")
        await first.member_tokens(True)
        yield first, second


def epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()  # Python 3.11 reads the "Z"


async def test_the_old_secret_works_through_the_grace_period_then_never_again(
        replicas: tuple[Plane, Plane]) -> None:
    """Rolled through one replica with a 4 s grace: the new secret works at once on both;
    the old one (cached and remembered by the second replica before the roll) works on the
    second replica until the grace ends and is refused from at most 1 s after, never again
    accepted; the listing shows the roll, the audit records it."""
    first, second = replicas
    created = await first.create("workspace", "rolled", actor="alice")
    old = created["secret"]
    for _ in range(3):  # cached and remembered (the verified-credential memo) by the second
        assert (await second.send(created)).status == 200

    rolled = await first.ok("POST", f"/tokens/{created['token']}/roll", {"grace_seconds": 4},
                            actor="alice")
    assert rolled["token"] == created["token"] and rolled["secret"] != old
    assert rolled["secret"].startswith("tgs_")
    end = epoch(rolled["previous_secret_expires_at"])
    assert abs(end - 4 - epoch(rolled["rolled_at"])) < 0.002
    for plane in (first, second):
        assert (await plane.send(rolled)).status == 200

    tries: list[tuple[float, float, int]] = []  # (sent, answered, status) of the old secret
    while time.time() < end + BOUND + 0.5:
        sent = time.time()
        status = (await second.send(created, secret=old)).status
        tries.append((sent, time.time(), status))
        await asyncio.sleep(0.05)
    accepted_in_grace = [s for sent, done, s in tries if done <= end]
    assert accepted_in_grace and set(accepted_in_grace) == {200}, tries
    after = [s for sent, _, s in tries if sent >= end + BOUND]
    assert after and set(after) == {401}, tries
    assert all(s == 401 for sent, _, s in tries if sent >= end), \
        "the old secret was accepted after a refusal"  # and never again after the end
    assert (await first.send(created, secret=old)).status == 401
    assert (await second.send(rolled)).status == 200

    (listed,) = [t for t in await first.tokens(actor="alice") if t["token"] == created["token"]]
    assert (listed["rolled_at"], listed["previous_secret_expires_at"]) == (
        rolled["rolled_at"], rolled["previous_secret_expires_at"])
    assert "secret" not in listed
    events = (await first.ok("GET", "/audit?limit=10", actor="alice"))["events"]
    (event,) = [e for e in events if e["event"] == "token.rolled"]
    assert (event["actor"], event["subject"], event["detail"]["grace_seconds"]) == (
        "alice", created["token"], 4)
    assert old not in str(events) and rolled["secret"] not in str(events)


async def test_a_grace_of_zero_ends_the_old_secret_on_every_replica_within_a_second(
        replicas: tuple[Plane, Plane]) -> None:
    """grace_seconds 0: the second replica, which had the credential cached, refuses the old
    secret within 1 s (the roll's invalidation), and the first at once."""
    first, second = replicas
    created = await first.create("member", "bob's", actor="bob")
    assert (await second.send(created)).status == 200
    started = time.monotonic()
    rolled = await first.ok("POST", f"/tokens/{created['token']}/roll", {"grace_seconds": 0},
                            actor="bob")
    assert (await first.send(created)).status == 401
    while (await second.send(created)).status == 200:
        assert time.monotonic() - started < BOUND, "the old secret outlived the roll"
        await asyncio.sleep(0.02)
    assert (await second.send(created)).status == 401
    assert (await second.send(rolled)).status == 200


async def test_who_may_roll_and_what_is_refused(replicas: tuple[Plane, Plane]) -> None:
    """Members roll their own token only (another's is 404); a bad grace is 422 naming it; a
    revoked token is 409; without a body the default grace is a day."""
    first, _ = replicas
    workspace = await first.create("workspace", "shared", actor="alice")
    mine = await first.create("member", "bob's", actor="bob")
    path = f"/tokens/{workspace['token']}/roll"
    assert (await first.call("POST", path, {}, actor="bob")).status == 404
    for grace in (-1, 7 * 86400 + 1, 1.5, "60"):
        reply = await first.call("POST", path, {"grace_seconds": grace}, actor="alice")
        assert (reply.status, reply.body["field"]) == (422, "grace_seconds"), grace
    assert (await first.call("POST", path, {"grace": 5}, actor="alice")).status == 422
    default = await first.call("POST", f"/tokens/{mine['token']}/roll", actor="bob")
    assert default.status == 200 and default.headers["Cache-Control"] == "no-store"
    assert epoch(default.body["previous_secret_expires_at"]) - \
        epoch(default.body["rolled_at"]) == pytest.approx(86400, abs=0.01)
    await first.ok("DELETE", f"/tokens/{mine['token']}", actor="bob")
    gone = await first.call("POST", f"/tokens/{mine['token']}/roll", actor="bob")
    assert gone.status == 409
    assert (await first.send(default.body)).status == 401
    assert (await first.send(mine)).status == 401
