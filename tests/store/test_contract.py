"""The Store contract: every test runs on MemoryStore and on a real Redis."""

from __future__ import annotations

import asyncio

import pytest

from gateway.policy.model import (
    AuditEvent,
    Role,
    TokenRecord,
    TokenStatus,
    TokenType,
    User,
    WorkspaceSettings,
)
from gateway.store.base import AlreadyExists, Invalidation, Store
from tests.conftest import FakeClock

NOW = 1_800_000_000.0


def user(name: str = "alice", role: Role = Role.MEMBER, ws: str = "acme") -> User:
    return User(name, role, ws, NOW)


def token(t: str, *, owner: str = "alice", ws: str = "acme",
          token_type: TokenType = TokenType.MEMBER, created: float = NOW,
          expires: float | None = NOW + 1000) -> TokenRecord:
    return TokenRecord(token=t, type=token_type, name="n " + t, owner=owner, workspace=ws,
                       created_by=owner, created_at=created, expires_at=expires,
                       secret_hash="hash-" + t)


async def until(predicate, timeout: float = 2.0) -> bool:  # type: ignore[no-untyped-def]
    """Wait (briefly, in small steps) for an asynchronous delivery."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_ping(store: Store) -> None:
    """A reachable store answers ping."""
    await store.ping()


async def test_users_round_trip(store: Store) -> None:
    """Users are added once, read back, and listed by workspace in name order."""
    await store.add_user(user("bob", Role.ADMIN))
    await store.add_user(user("alice"))
    await store.add_user(user("carol", ws="other"))
    with pytest.raises(AlreadyExists):
        await store.add_user(user("alice", Role.ADMIN))
    assert await store.get_user("alice") == user("alice")
    assert await store.get_user("nobody") is None
    assert [u.username for u in await store.list_users("acme")] == ["alice", "bob"]
    assert [u.username for u in await store.list_users(None)] == ["alice", "bob", "carol"]


async def test_tokens_round_trip_with_the_hash(store: Store) -> None:
    """A stored token reads back exactly, and a clash is refused."""
    rec = token("t1")
    await store.create_token(rec)
    assert await store.get_token("t1") == rec
    with pytest.raises(AlreadyExists):
        await store.create_token(rec)
    assert await store.get_token("t2") is None


async def test_load_credential_brings_owner_and_settings(store: Store) -> None:
    """One call returns the record, its owner and the workspace settings."""
    await store.add_user(user())
    await store.put_settings("acme", WorkspaceSettings(member_tokens=True))
    await store.create_token(token("t1"))
    cred = await store.load_credential("t1")
    assert cred is not None
    assert cred.record == token("t1") and cred.owner == user()
    assert cred.settings.member_tokens is True
    assert await store.load_credential("missing") is None


async def test_list_tokens_by_workspace_and_owner(store: Store) -> None:
    """Listings filter by workspace and owner, oldest first."""
    await store.create_token(token("b", created=NOW + 2))
    await store.create_token(token("a", created=NOW + 1))
    await store.create_token(token("c", owner="bob"))
    await store.create_token(token("d", ws="other"))
    assert [r.token for r in await store.list_tokens("acme")] == ["c", "a", "b"]
    assert [r.token for r in await store.list_tokens("acme", owner="alice")] == ["a", "b"]
    assert {r.token for r in await store.list_tokens(None)} == {"a", "b", "c", "d"}


async def test_revoke_is_idempotent_and_keeps_the_first_time(store: Store) -> None:
    """Revoking twice keeps the first revocation time; unknown tokens give None."""
    await store.create_token(token("t1"))
    first = await store.revoke_token("t1", at=NOW + 5)
    again = await store.revoke_token("t1", at=NOW + 9)
    assert first is not None and again is not None
    assert first.revoked_at == again.revoked_at == NOW + 5
    assert again.status(NOW + 10) is TokenStatus.REVOKED
    assert await store.revoke_token("nope", at=NOW) is None


async def test_revoke_all_counts_active_tokens_of_a_type(store: Store) -> None:
    """revoke_all revokes only active tokens of the workspace (and type) and counts them."""
    await store.create_token(token("m1"))
    await store.create_token(token("m2", expires=NOW - 1))  # already expired
    await store.create_token(token("w1", token_type=TokenType.WORKSPACE, owner="workspace:acme"))
    await store.create_token(token("x1", ws="other"))
    await store.revoke_token("m1", at=NOW - 5)
    await store.create_token(token("m3"))
    assert await store.revoke_all("acme", at=NOW, token_type=TokenType.MEMBER) == 1
    assert (await store.get_token("m3")).revoked_at == NOW  # type: ignore[union-attr]
    assert (await store.get_token("w1")).revoked_at is None  # type: ignore[union-attr]
    assert (await store.get_token("m1")).revoked_at == NOW - 5  # type: ignore[union-attr]
    assert await store.revoke_all("acme", at=NOW) == 1  # w1
    assert (await store.get_token("x1")).revoked_at is None  # type: ignore[union-attr]


async def test_remove_user_revokes_their_tokens(store: Store) -> None:
    """Removing a user deletes them and revokes every token they own at once."""
    await store.add_user(user())
    await store.add_user(user("bob"))
    await store.create_token(token("a1"))
    await store.create_token(token("a2"))
    await store.create_token(token("b1", owner="bob"))
    assert await store.remove_user("alice", at=NOW) == 2
    assert await store.get_user("alice") is None
    assert [u.username for u in await store.list_users("acme")] == ["bob"]
    assert (await store.get_token("a1")).status(NOW) is TokenStatus.REVOKED  # type: ignore[union-attr]
    assert (await store.get_token("b1")).status(NOW) is TokenStatus.ACTIVE  # type: ignore[union-attr]
    assert await store.remove_user("alice", at=NOW) is None


async def test_touch_records_last_use_but_never_backwards(store: Store) -> None:
    """Coalesced last-use writes move forward only and skip unknown tokens."""
    await store.create_token(token("t1"))
    await store.touch({"t1": NOW + 10, "ghost": NOW})
    await store.touch({"t1": NOW + 5})
    assert (await store.get_token("t1")).last_used_at == NOW + 10  # type: ignore[union-attr]
    assert await store.get_token("ghost") is None


async def test_settings_default_and_round_trip(store: Store) -> None:
    """Workspace settings default to member tokens off and read back what was put."""
    assert await store.get_settings("acme") == WorkspaceSettings()
    new = WorkspaceSettings(member_tokens=True, default_expiry_days=30, max_expiry_days=60)
    await store.put_settings("acme", new)
    assert await store.get_settings("acme") == new
    assert await store.get_settings("other") == WorkspaceSettings()


async def test_audit_newest_first_and_filtered(store: Store) -> None:
    """Audit events come back newest first, limited, and per workspace."""
    for i in range(5):
        await store.append_audit(AuditEvent(NOW + i, "e", "op", f"s{i}", "acme" if i % 2 else "x",
                                            {"i": i}))
    events = await store.list_audit(workspace=None, limit=3)
    assert [e.subject for e in events] == ["s4", "s3", "s2"]
    assert [e.subject for e in await store.list_audit(workspace="acme", limit=10)] == ["s3", "s1"]
    assert events[0].detail == {"i": 4}


async def test_rate_limit_hits_and_peeks(store: Store, clock: FakeClock) -> None:
    """The store's sliding window admits the limit, then refuses without counting."""
    decisions = [await store.hit_rate_limit("k", 3, 10) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert not (await store.peek_rate_limit("k", 3, 10)).allowed
    assert (await store.peek_rate_limit("other", 3, 10)).allowed


async def test_invalidations_reach_subscribers(store: Store) -> None:
    """Revocations, removals and settings changes are pushed to subscribers."""
    got: list[Invalidation | None] = []
    await store.subscribe(got.append)
    await store.add_user(user())
    await store.create_token(token("t1"))
    await store.revoke_token("t1", at=NOW)
    assert await until(lambda: any(m and m.kind == "token" and m.key == "t1" for m in got))
    await store.remove_user("alice", at=NOW)
    assert await until(lambda: any(m and m.kind == "user" and m.key == "alice" for m in got))
    await store.put_settings("acme", WorkspaceSettings(member_tokens=True))
    assert await until(lambda: any(m and m.kind == "all" for m in got))
    revoked_at = [m.at for m in got if m and m.kind == "token"]
    assert revoked_at == [NOW]


async def test_concurrent_creates_and_revoke_all_lose_nothing(store: Store) -> None:
    """Every token created before revoke_all is revoked; none created after it is."""
    async def create(i: int) -> None:
        await store.create_token(token(f"c{i}"))

    await asyncio.gather(*(create(i) for i in range(30)))
    first = asyncio.gather(*(create(i) for i in range(30, 60)))
    count_task = asyncio.ensure_future(store.revoke_all("acme", at=NOW))
    await first
    count = await count_task
    after = [await store.get_token(f"c{i}") for i in range(60)]
    revoked = sum(1 for r in after if r is not None and r.revoked_at is not None)
    assert revoked == count >= 30
    assert all(r is not None for r in after)


async def test_touch_many_tokens_at_once(store: Store) -> None:
    """A flush larger than one batch records every token's last use."""
    for i in range(2500):
        await store.create_token(token(f"t{i}"))
    await store.touch({f"t{i}": NOW + i for i in range(2500)})
    for i in (0, 999, 1000, 2499):
        assert (await store.get_token(f"t{i}")).last_used_at == NOW + i  # type: ignore[union-attr]


async def test_reserve_then_refund_gives_the_slot_back(store: Store) -> None:
    """A reservation counts like a hit and says when; refunding it frees exactly that slot."""
    first = await store.reserve_rate_limit("authfail:a", 2, 60)
    second = await store.reserve_rate_limit("authfail:a", 2, 60)
    third = await store.reserve_rate_limit("authfail:a", 2, 60)
    assert [r.decision.allowed for r in (first, second, third)] == [True, True, False]
    assert first.at_us is not None and second.at_us is not None and third.at_us is None
    after = await store.refund_rate_limit("authfail:a", 2, 60, at_us=first.at_us)
    assert (after.allowed, after.remaining) == (True, 1)
    assert (await store.reserve_rate_limit("authfail:a", 2, 60)).decision.allowed
    assert not (await store.reserve_rate_limit("authfail:a", 2, 60)).decision.allowed


async def test_refund_of_nothing_changes_nothing(store: Store) -> None:
    """Refunding a timestamp the window does not hold (or an empty key) frees no slot."""
    taken = await store.reserve_rate_limit("authfail:b", 1, 60)
    assert taken.at_us is not None
    stale = await store.refund_rate_limit("authfail:b", 1, 60, at_us=taken.at_us - 1)
    assert (stale.allowed, stale.remaining) == (False, 0)
    empty = await store.refund_rate_limit("authfail:none", 1, 60, at_us=taken.at_us)
    assert (empty.allowed, empty.remaining) == (True, 1)
    assert not (await store.peek_rate_limit("authfail:b", 1, 60)).allowed


async def test_concurrent_reservations_never_exceed_the_budget(store: Store) -> None:
    """Of 30 concurrent reservations against a budget of 5, exactly 5 are admitted."""
    got = await asyncio.gather(*(store.reserve_rate_limit("authfail:c", 5, 60) for _ in range(30)))
    assert sum(r.decision.allowed for r in got) == 5
    assert all((r.at_us is None) != r.decision.allowed for r in got)


async def test_created_tokens_are_announced(store: Store) -> None:
    """A ``created`` invalidation reaches subscribers like the others (caches forget unknowns)."""
    got: list[Invalidation | None] = []
    await store.subscribe(got.append)
    await store.publish(Invalidation("created", "t9", NOW))
    assert await until(lambda: Invalidation("created", "t9", NOW) in got)
