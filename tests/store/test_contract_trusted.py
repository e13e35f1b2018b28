"""The Store contract for trusted authentication, on MemoryStore and on a real Redis."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from gateway.policy.model import NO_WORKSPACE, AuditEvent, Role, User
from gateway.policy.trusted import BearerRecord, TrustedKey
from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from tests.conftest import FakeClock


def key(ws: str = "acme", generation: str = "g1") -> TrustedKey:
    return TrustedKey(workspace=ws, generation=generation, key_encrypted="enc-" + generation,
                      enabled_at=1_800_000_000.0, enabled_by="operator")


def bearer(h: str, clock: FakeClock, *, ws: str = "acme", generation: str = "g1",
           user: str = "alice", validity: float = 300.0) -> BearerRecord:
    return BearerRecord(token_hash=h, user=user, workspace=ws, generation=generation,
                        created_at=clock(), expires_at=clock() + validity)


async def pass_time(store: Store, clock: FakeClock, seconds: float) -> None:
    """Let ``seconds`` pass for the store: the fake clock, or real time for Redis's TTL."""
    if isinstance(store, MemoryStore):
        clock.advance(seconds)
    else:
        await asyncio.sleep(seconds)


async def test_enable_stores_a_key_once(store: Store) -> None:
    """Enabling stores the key; enabling again keeps the first key and returns it."""
    assert await store.get_trusted_key("acme") is None
    assert await store.enable_trusted_auth(key()) == key()
    assert await store.enable_trusted_auth(key(generation="g2")) == key()
    assert await store.get_trusted_key("acme") == key()
    assert await store.get_trusted_key("other") is None


async def test_disable_removes_the_key_and_returns_it(store: Store) -> None:
    """Disabling removes the key (idempotently); enabling again stores a new one."""
    await store.enable_trusted_auth(key())
    assert await store.disable_trusted_auth("acme") == key()
    assert await store.get_trusted_key("acme") is None
    assert await store.disable_trusted_auth("acme") is None
    assert await store.enable_trusted_auth(key(generation="g2")) == key(generation="g2")


async def test_load_bearer_brings_user_and_current_generation(
        store: Store, clock: FakeClock) -> None:
    """One call returns the bearer record, its user and the workspace's key generation."""
    alice = User("alice", Role.ADMIN, "acme", 1_800_000_000.0)
    await store.add_user(alice)
    await store.enable_trusted_auth(key())
    record = bearer("h1", clock)
    await store.create_bearer(record)
    cred = await store.load_bearer("h1")
    assert cred is not None
    assert (cred.record, cred.owner, cred.generation) == (record, alice, "g1")
    assert await store.load_bearer("h2") is None


async def test_load_bearer_sees_disable_and_reenable_at_once(
        store: Store, clock: FakeClock) -> None:
    """After disable the generation is gone; after re-enable it is the new one."""
    await store.enable_trusted_auth(key())
    await store.create_bearer(bearer("h1", clock))
    await store.disable_trusted_auth("acme")
    cred = await store.load_bearer("h1")
    assert cred is not None and cred.generation is None and cred.owner is None
    await store.enable_trusted_auth(key(generation="g2"))
    cred = await store.load_bearer("h1")
    assert cred is not None and cred.generation == "g2" and cred.record.generation == "g1"


async def test_bearer_expires_with_the_store_ttl(store: Store, clock: FakeClock) -> None:
    """A bearer record is gone once its validity has passed."""
    await store.create_bearer(bearer("short", clock, validity=0.2))
    await store.create_bearer(bearer("long", clock, validity=60))
    assert await store.load_bearer("short") is not None
    await pass_time(store, clock, 0.3)
    assert await store.load_bearer("short") is None
    assert await store.revoke_bearer("short", at=clock()) is None
    assert await store.load_bearer("long") is not None


async def test_revoke_bearer_is_idempotent(store: Store, clock: FakeClock) -> None:
    """Revoking marks the record once; later calls return the first revocation."""
    await store.create_bearer(bearer("h1", clock))
    first = await store.revoke_bearer("h1", at=clock() + 1)
    assert first is not None and first.revoked_at == clock() + 1
    again = await store.revoke_bearer("h1", at=clock() + 5)
    assert again == first
    cred = await store.load_bearer("h1")
    assert cred is not None and cred.record.revoked_at == clock() + 1
    assert await store.revoke_bearer("unknown", at=clock()) is None


async def test_revoked_bearer_still_expires(store: Store, clock: FakeClock) -> None:
    """Revoking keeps the record's expiry: it still disappears when the token expires."""
    await store.create_bearer(bearer("h1", clock, validity=0.2))
    await store.revoke_bearer("h1", at=clock())
    await pass_time(store, clock, 0.3)
    assert await store.load_bearer("h1") is None


async def test_bearers_of_other_workspaces_are_independent(
        store: Store, clock: FakeClock) -> None:
    """Disabling one workspace leaves another workspace's key generation alone."""
    await store.enable_trusted_auth(key("acme", "ga"))
    await store.enable_trusted_auth(key("beta", "gb"))
    await store.create_bearer(bearer("hb", clock, ws="beta", generation="gb", user="bob"))
    await store.disable_trusted_auth("acme")
    cred = await store.load_bearer("hb")
    assert cred is not None and cred.generation == "gb"


async def test_memory_store_sweeps_bearers_nobody_presents(clock: FakeClock) -> None:
    """Expired bearers that are never looked up again do not pile up in the memory store."""
    store = MemoryStore(clock=clock)
    for i in range(1024):
        await store.create_bearer(bearer(f"old{i}", clock, validity=1))
    clock.advance(2)
    for i in range(1024):
        await store.create_bearer(bearer(f"new{i}", clock, validity=60))
    assert len(store._bearers) < 1100


# --- user generations and the audit lists ------------------------------------


async def test_user_and_bearer_generations_round_trip(store: Store, clock: FakeClock) -> None:
    """A user's generation and the one a bearer was minted for come back as stored."""
    mo = User("mo", Role.MEMBER, "acme", 1_800_000_000.0, generation="gen-1")
    await store.add_user(mo)
    assert await store.get_user("mo") == mo
    assert [u.generation for u in await store.list_users("acme")] == ["gen-1"]
    await store.enable_trusted_auth(key())
    record = replace(bearer("h1", clock, user="mo"), user_generation="gen-1")
    await store.create_bearer(record)
    cred = await store.load_bearer("h1")
    assert cred is not None and cred.record == record and cred.owner == mo


async def test_re_added_user_has_the_new_generation(store: Store, clock: FakeClock) -> None:
    """After removal and re-adding, loading an old bearer brings the new user's generation."""
    await store.add_user(User("mo", Role.MEMBER, "acme", 1_800_000_000.0, generation="old"))
    await store.create_bearer(replace(bearer("h1", clock, user="mo"), user_generation="old"))
    await store.remove_user("mo", at=clock())
    cred = await store.load_bearer("h1")
    assert cred is not None and cred.owner is None
    await store.add_user(User("mo", Role.ADMIN, "acme", 1_800_000_100.0, generation="new"))
    cred = await store.load_bearer("h1")
    assert cred is not None and cred.owner is not None
    assert (cred.owner.generation, cred.record.user_generation) == ("new", "old")


def event(at: float, subject: str, ws: str) -> AuditEvent:
    return AuditEvent(1_800_000_000.0 + at, "e", "op", subject, ws, {"n": at})


async def test_audit_lists_are_per_workspace_and_merged_by_time(store: Store) -> None:
    """Each workspace reads only its own list, no workspace is the security list, and
    the whole log is every list merged newest first."""
    for at, subject, ws in [(1, "a1", "acme"), (2, "s1", NO_WORKSPACE), (3, "b1", "beta"),
                            (4, "a2", "acme"), (5, "s2", NO_WORKSPACE), (6, "b2", "beta")]:
        await store.append_audit(event(at, subject, ws))
    subjects = [e.subject for e in await store.list_audit(workspace=None, limit=10)]
    assert subjects == ["b2", "s2", "a2", "b1", "s1", "a1"]
    assert [e.subject for e in await store.list_audit(workspace=None, limit=4)] == subjects[:4]
    assert [e.subject for e in await store.list_audit(workspace="acme", limit=10)] == ["a2", "a1"]
    assert [e.subject for e in await store.list_audit(workspace="acme", limit=1)] == ["a2"]
    security = await store.list_audit(workspace=NO_WORKSPACE, limit=10)
    assert [(e.subject, e.workspace) for e in security] == [("s2", ""), ("s1", "")]
    assert await store.list_audit(workspace="nowhere", limit=10) == []
