"""Changes that span two slots (a directory entry and its workspace), stopped between
their steps by an injected failure: what is left lets nobody in and breaks no later
call. On a single Redis and on a real cluster (where the steps hit different nodes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.policy.model import Role, TokenRecord, TokenStatus, TokenType, User
from gateway.policy.trusted import TrustedKey
from gateway.store.base import AlreadyExists
from gateway.store.redis import RedisStore
from gateway.store.resp import pack

NOW = 1_800_000_000.0


class Crash(Exception):
    """The process died here."""


@pytest.fixture(params=["redis", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    """A Redis store on one server or on the run's cluster, emptied first."""
    s = RedisStore(request.getfixturevalue("redis_url" if request.param == "redis"
                                           else "cluster_url"))
    yield s
    await s.close()


def crash_at(store: RedisStore, script: str) -> None:
    """Make the next call of ``script`` (one step of a change) die before it runs."""
    real = store._scripts[script]

    async def dead(*args: object, **kwargs: object) -> object:
        store._scripts[script] = real  # only once: the process restarts sound
        raise Crash(script)

    store._scripts[script] = dead  # type: ignore[assignment]


async def age_entry(store: RedisStore, entry: str) -> None:
    """Let the claim's grace pass for a directory entry (as if written long ago)."""
    await store._fast.call(pack("HSET", entry, "at", "0"), key=entry)


def user(name: str = "alice", ws: str = "acme") -> User:
    return User(name, Role.MEMBER, ws, NOW, "gen-" + ws)


def token(t: str, owner: str = "alice", ws: str = "acme") -> TokenRecord:
    return TokenRecord(token=t, type=TokenType.MEMBER, name="n", owner=owner, workspace=ws,
                       created_by=owner, created_at=NOW, expires_at=NOW + 1000,
                       secret_hash="h-" + t)


async def test_add_user_stopped_after_claiming_the_name(store: RedisStore) -> None:
    """The name's entry without its user reads as no user (not listed, 409 nowhere);
    the user can be added again, here or (after the claim's grace) elsewhere, and
    removed without an error."""
    crash_at(store, "create_user")
    with pytest.raises(Crash):
        await store.add_user(user())
    assert await store.get_user("alice") is None
    assert await store.list_users(None) == []
    assert await store.remove_user("alice", at=NOW) is None
    crash_at(store, "create_user")
    with pytest.raises(Crash):
        await store.add_user(user())
    with pytest.raises(AlreadyExists):  # another add may still be completing
        await store.add_user(user(ws="beta"))
    await age_entry(store, store.keys.user_dir("alice"))
    await store.add_user(user(ws="beta"))
    assert await store.get_user("alice") == user(ws="beta")
    assert [u.workspace for u in await store.list_users(None)] == ["beta"]
    assert await store.remove_user("alice", at=NOW) == 0


async def test_remove_user_stopped_before_releasing_the_name(store: RedisStore) -> None:
    """The user and their tokens are gone at once (tokens refused); the leftover entry
    reads as no user, and the name can be added again in any workspace."""
    await store.add_user(user())
    await store.create_token(token("t1"))
    crash_at(store, "dir_release")
    with pytest.raises(Crash):
        await store.remove_user("alice", at=NOW)
    assert await store.get_user("alice") is None
    cred = await store.load_credential("t1")
    assert cred is not None and cred.owner is None
    assert cred.record.status(NOW + 1) is TokenStatus.REVOKED
    await store.add_user(user())  # the same workspace: at once
    assert await store.get_user("alice") == user()
    crash_at(store, "dir_release")
    with pytest.raises(Crash):
        await store.remove_user("alice", at=NOW)
    await age_entry(store, store.keys.user_dir("alice"))
    await store.add_user(user(ws="beta"))
    assert await store.get_user("alice") == user(ws="beta")


async def test_create_token_stopped_after_its_directory_entry(store: RedisStore) -> None:
    """An entry for a token that was never written: unknown everywhere (no credential,
    not listed, not revocable), and revoke-all of its workspace still works."""
    await store.add_user(user())
    crash_at(store, "create_token")
    with pytest.raises(Crash):
        await store.create_token(token("t1"))
    assert await store.load_credential("t1") is None
    assert await store.get_token("t1") is None
    assert await store.revoke_token("t1", at=NOW) is None
    assert await store.list_tokens(None) == []
    await store.create_token(token("t2"))
    assert await store.revoke_all("acme", at=NOW) == 1
    assert await store.remove_user("alice", at=NOW) == 0


def key(ws: str, generation: str = "g1", org_id: int | None = None) -> TrustedKey:
    return TrustedKey(workspace=ws, generation=generation, key_encrypted="enc-" + generation,
                      enabled_at=NOW, enabled_by="operator", org_id=org_id)


async def test_enable_stopped_after_claiming_the_org_id(store: RedisStore) -> None:
    """An org id claimed by a workspace whose key never recorded it finds no key; the
    same workspace finishes the enable at once, another takes the id after the grace."""
    crash_at(store, "trusted_enable")
    with pytest.raises(Crash):
        await store.enable_trusted_auth(key("acme", org_id=7))
    assert await store.trusted_key_for_org_id(7) is None
    assert await store.get_trusted_key("acme") is None
    with pytest.raises(AlreadyExists):
        await store.enable_trusted_auth(key("beta", org_id=7))
    await age_entry(store, store.keys.org_dir(7))
    assert (await store.enable_trusted_auth(key("beta", org_id=7))).org_id == 7
    assert (await store.trusted_key_for_org_id(7)).workspace == "beta"  # type: ignore[union-attr]
    crash_at(store, "trusted_enable")
    with pytest.raises(Crash):
        await store.enable_trusted_auth(key("acme", org_id=8))
    assert (await store.enable_trusted_auth(key("acme", org_id=8))).org_id == 8


async def test_disable_and_org_change_stopped_before_releasing(store: RedisStore) -> None:
    """A disabled key is gone at once (its org id finds nothing); an org id given up
    but not yet released finds nothing either; another workspace can take both."""
    await store.enable_trusted_auth(key("acme", org_id=7))
    crash_at(store, "dir_release")
    with pytest.raises(Crash):
        await store.enable_trusted_auth(key("acme", "g2", org_id=8))  # gives up 7
    assert await store.trusted_key_for_org_id(7) is None
    assert (await store.trusted_key_for_org_id(8)).workspace == "acme"  # type: ignore[union-attr]
    crash_at(store, "dir_release")
    with pytest.raises(Crash):
        await store.disable_trusted_auth("acme")
    assert await store.get_trusted_key("acme") is None
    assert await store.trusted_key_for_org_id(8) is None
    for org in (7, 8):
        await age_entry(store, store.keys.org_dir(org))
        assert (await store.enable_trusted_auth(key("beta", "g3", org_id=org))).org_id == org
