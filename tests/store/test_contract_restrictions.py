"""The Store contract for restricted and rolled tokens and the expiry watch, on every store."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from gateway.policy.expiring import no_expiring
from gateway.policy.model import DAY, TokenType
from gateway.policy.ratelimit import window_key
from gateway.policy.restrictions import TokenLimit, parse_restrictions
from gateway.policy.scopes import READ_ONLY
from gateway.store.base import Invalidation, Store
from gateway.store.memory import MemoryStore
from tests.conftest import FakeClock
from tests.store.test_contract import NOW, token, until, user

RESTRICTED = parse_restrictions(
    scopes=[READ_ONLY, {"methods": ["POST"], "path": "/api/{workspace}/reports/{r}/runs"},
            {"class": "reports"}],
    allowed_networks=["192.0.2.0/24", "2001:db8::/32"],
    rate_limit={"limit": 3, "window_seconds": 60}, class_names=None)


async def test_restrictions_round_trip_everywhere_a_record_is_read(store: Store) -> None:
    """get_token, load_credential (what the data plane caches) and list_tokens bring the
    compiled restrictions back equal; an unrestricted record has none."""
    await store.add_user(user())
    rec = replace(token("t1"), restrictions=RESTRICTED)
    await store.create_token(rec)
    await store.create_token(token("t2"))
    assert await store.get_token("t1") == rec
    credential = await store.load_credential("t1")
    assert credential is not None and credential.record.restrictions == RESTRICTED
    listed = {r.token: r for r in await store.list_tokens("acme")}
    assert listed["t1"].restrictions == RESTRICTED
    assert listed["t2"].restrictions is None


async def test_roll_keeps_the_old_hash_until_the_grace_end_and_tells_everyone(
        store: Store) -> None:
    """A roll swaps the hash, keeps the replaced one with its end, and pushes an invalidation;
    rolling again replaces the older secret (at most two are kept)."""
    got: list[Invalidation | None] = []
    await store.subscribe(got.append)
    await store.create_token(token("t1"))
    rolled = await store.roll_secret("t1", secret_hash="hash-2", previous_until=NOW + 60,
                                     at=NOW)
    assert rolled is not None
    assert (rolled.secret_hash, rolled.previous_secret_hash) == ("hash-2", "hash-t1")
    assert (rolled.previous_secret_until, rolled.rolled_at) == (NOW + 60, NOW)
    assert await store.get_token("t1") == rolled
    credential = await store.load_credential("t1")
    assert credential is not None and credential.record == rolled
    assert await until(lambda: any(m is not None and (m.kind, m.key) == ("token", "t1")
                                   for m in got))
    again = await store.roll_secret("t1", secret_hash="hash-3", previous_until=NOW + 5,
                                    at=NOW + 1)
    assert again is not None
    assert (again.secret_hash, again.previous_secret_hash) == ("hash-3", "hash-2")
    assert await store.roll_secret("nope", secret_hash="x", previous_until=NOW, at=NOW) is None


async def test_a_revoked_token_is_not_rolled(store: Store) -> None:
    """Rolling a revoked token changes nothing: it comes back as it was."""
    await store.create_token(token("t1"))
    revoked = await store.revoke_token("t1", at=NOW)
    assert await store.roll_secret("t1", secret_hash="h2", previous_until=NOW + 9,
                                   at=NOW + 1) == revoked


async def test_a_rate_limit_is_set_and_removed_and_caches_are_told(store: Store) -> None:
    """set_rate_limit changes only the own limit (scopes stay) and pushes an invalidation."""
    got: list[Invalidation | None] = []
    await store.subscribe(got.append)
    await store.create_token(replace(token("t1"), restrictions=parse_restrictions(
        scopes=[READ_ONLY], class_names=None)))
    limited = await store.set_rate_limit("t1", TokenLimit(5, 30.0))
    assert limited is not None and limited.restrictions is not None
    assert limited.restrictions.rate_limit == TokenLimit(5, 30.0)
    assert limited.restrictions.scopes is not None
    assert await store.get_token("t1") == limited
    assert await until(lambda: any(m is not None and m.key == "t1" for m in got))
    cleared = await store.set_rate_limit("t1", None)
    assert cleared is not None and cleared.restrictions is not None
    assert cleared.restrictions.rate_limit is None
    await store.create_token(token("t2"))
    plain = await store.set_rate_limit("t2", TokenLimit(1, 1.0))
    assert plain is not None and await store.get_token("t2") == plain
    unlimited = await store.set_rate_limit("t2", None)
    assert unlimited is not None and unlimited.restrictions is None
    assert await store.set_rate_limit("nope", None) is None


async def test_two_windows_admit_into_both_or_neither(store: Store) -> None:
    """The token's own window refusing leaves the user's window untouched.

    The keys are a subject's (one hash tag), as the gateway builds them: on a
    cluster both windows are in one slot, so one script judges them.
    """
    user, own = window_key("default", "u:alice"), window_key("token:t", "u:alice")
    first, second = (user, 40, 10.0), (own, 2, 10.0)
    results = [await store.hit_rate_limit_both(first, second) for _ in range(3)]
    assert [a.allowed and b.allowed for a, b in results] == [True, True, False]
    assert (await store.peek_rate_limit(user, 40, 10)).remaining == 38


async def test_a_lease_has_one_holder_until_it_ends(store: Store, clock: FakeClock) -> None:
    """The first claim wins; a second (of anyone) fails while it runs, succeeds after."""
    assert await store.claim_lease("job", "a", 0.3)
    assert not await store.claim_lease("job", "b", 0.3)
    assert not await store.claim_lease("job", "a", 0.3)
    assert await store.claim_lease("other-job", "b", 0.3)
    if isinstance(store, MemoryStore):
        clock.advance(0.3)
        assert await store.claim_lease("job", "b", 0.3)
        return
    deadline = asyncio.get_running_loop().time() + 5
    while not await store.claim_lease("job", "b", 0.3):  # Redis expires it on its own clock
        assert asyncio.get_running_loop().time() < deadline, "the lease never ended"
        await asyncio.sleep(0.05)


async def test_expiring_counts_are_kept_for_every_reader(store: Store) -> None:
    """refresh_expiring counts active tokens per type and horizon; load_expiring reads the
    last counts (zeros before any refresh)."""
    assert await store.load_expiring() == no_expiring()
    await store.create_token(token("m1", expires=NOW + 0.5 * DAY))
    await store.create_token(token("w1", ws="other", owner="workspace:other",
                                   token_type=TokenType.WORKSPACE, expires=NOW + 5 * DAY))
    await store.create_token(token("w2", ws="other", owner="workspace:other",
                                   token_type=TokenType.WORKSPACE, expires=NOW + 20 * DAY))
    await store.create_token(token("w3", ws="other", owner="workspace:other",
                                   token_type=TokenType.WORKSPACE, expires=NOW + 2 * DAY))
    await store.create_token(token("p1", token_type=TokenType.PERSONAL, expires=None))
    await store.revoke_token("w3", at=NOW)
    counts = await store.refresh_expiring(NOW)
    assert counts[("member", "1d")] == 1
    assert (counts[("workspace", "1d")], counts[("workspace", "7d")],
            counts[("workspace", "30d")]) == (0, 1, 2)
    assert counts[("personal", "30d")] == 0
    assert await store.load_expiring() == counts
