"""Store faults: dropped connections heal, and revocations still reach every cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.policy.model import Role, TokenRecord, TokenType, User
from gateway.store import StoreError
from gateway.store.redis import RedisStore
from tests.conftest import ADMIN_KEY, InProcess, basic

POOLED = 4
T = TypeVar("T")


async def status_of(url: str, auth: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Authorization": auth}) as r:
        return r.status


async def until_status(url: str, auth: str, want: int, seconds: float = 2.0) -> bool:
    """Poll in small steps until the proxy answers ``want``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await status_of(url, auth) == want:
            return True
        await asyncio.sleep(0.02)
    return False


async def kill_clients(redis_url: str, *filters: str) -> int:
    """CLIENT KILL every client but this one matching ``filters`` (default: all normal ones)."""
    admin = aioredis.Redis.from_url(redis_url)
    try:
        return int(await admin.execute_command(
            "CLIENT", "KILL", *(filters or ("TYPE", "normal")), "SKIPME", "yes"))
    finally:
        await admin.aclose()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    """A Redis store of its own on the run's Redis."""
    s = RedisStore(redis_url, timeout=2.0)
    yield s
    await s.close()


async def fill_pool(store: RedisStore) -> None:
    """Leave POOLED idle connections in the store's pool (concurrent calls each take one)."""
    await asyncio.gather(*(store.get_user("nobody") for _ in range(POOLED)))


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


async def test_calls_on_every_pooled_connection_redis_dropped_succeed(store: RedisStore,
                                                                      redis_url: str) -> None:
    """A connection Redis dropped while it sat in the pool is replaced before use: reads
    and writes that are never repeated (adding users) both succeed on every one of them."""
    await fill_pool(store)
    assert await kill_clients(redis_url) >= POOLED
    assert await asyncio.gather(*(store.get_user("nobody") for _ in range(POOLED))) \
        == [None] * POOLED
    await fill_pool(store)
    assert await kill_clients(redis_url) >= POOLED
    users = [User(f"u{i}", Role.MEMBER, "default", 1.0) for i in range(POOLED)]
    await asyncio.gather(*(store.add_user(u) for u in users))
    assert [u.username for u in await store.list_users("default")] == [u.username for u in users]


async def held_client(admin: aioredis.Redis, call: asyncio.Task[T]) -> int:
    """Wait until ``call``'s command is held by CLIENT PAUSE (flag ``b``); its client id."""
    while not call.done():
        for client in await admin.client_list():
            if "b" in client["flags"]:
                return int(client["id"])
        await asyncio.sleep(0.01)
    raise AssertionError(f"the call was never held: {call!r}")


async def dropped_in_flight(redis_url: str, call: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
    """Start ``call`` while Redis holds every command that may write (scripts and EXEC
    included), and drop its connection once its command is held: the call has sent it
    and gets no answer, the case a caller cannot tell from a lost reply."""
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
        try:
            task = asyncio.ensure_future(call())
            client_id = await held_client(admin, task)
            assert await admin.client_kill_filter(_id=client_id) == 1
        finally:
            await admin.execute_command("CLIENT", "UNPAUSE")
    finally:
        await admin.aclose()
    return task


async def test_a_revocation_whose_connection_drops_in_flight_is_asked_once_more(
    store: RedisStore, redis_url: str
) -> None:
    """A revocation (a call safe to repeat) whose connection Redis drops after the command
    was sent is asked again on a new connection, and revokes."""
    record = TokenRecord("tgw_t", TokenType.WORKSPACE, "t", "root", "default", "root",
                         1.0, None, "hash")
    await store.create_token(record)
    fresh = RedisStore(redis_url, timeout=2.0)  # no connection yet: the call opens the only one
    try:
        revoke = await dropped_in_flight(redis_url, lambda: fresh.revoke_token("tgw_t", at=5.0))
        assert (await revoke) == replace(record, revoked_at=5.0)
    finally:
        await fresh.close()
    assert await store.get_token("tgw_t") == replace(record, revoked_at=5.0)


async def test_a_write_whose_connection_drops_in_flight_is_not_repeated(
    store: RedisStore, redis_url: str
) -> None:
    """Adding a user is never sent twice: a drop after sending is a StoreError (503), not a
    second try that could report its own first write as a conflict."""
    user = User("ada", Role.ADMIN, "default", 1.0)
    write = await dropped_in_flight(redis_url, lambda: store.add_user(user))
    with pytest.raises(StoreError):
        await write
    assert await store.get_user("ada") is None  # held, then dropped: it never ran
    await store.add_user(user)  # the caller's own retry works


async def test_admin_calls_right_after_redis_drops_its_connections(
    make_gateway, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    """Right after Redis dropped every connection of the gateway, an admin revoke (on every
    pooled connection at once) answers 200 and takes effect, and creating a token 201."""
    g: InProcess = await make_gateway()
    tokens = []
    async with aiohttp.ClientSession() as s:
        for i in range(POOLED):
            async with s.post(g.admin + "/admin/api/tokens", headers=admin_headers(),
                              json={"type": "workspace", "name": f"t{i}"}) as r:
                assert r.status == 201
                doc = await r.json()
                tokens.append((doc["token"], doc["secret"]))
        await fill_pool(g.gw.store)  # type: ignore[attr-defined]
        assert await kill_clients(redis_url) >= POOLED

        async def revoke(token: str) -> int:
            async with s.delete(g.admin + f"/admin/api/tokens/{token}",
                                headers=admin_headers()) as r:
                return r.status

        assert await asyncio.gather(*(revoke(t) for t, _ in tokens)) == [200] * POOLED
        for token, secret in tokens:
            assert await status_of(g.proxy + "/x", basic(token, secret)) == 401
        assert await kill_clients(redis_url) >= 1
        async with s.post(g.admin + "/admin/api/tokens", headers=admin_headers(),
                          json={"type": "workspace", "name": "after"}) as r:
            assert r.status == 201


async def test_dropped_redis_connections_heal_and_revocation_still_propagates(
    make_gateway, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    """After Redis drops every client (data plane and pub/sub), requests work again and a
    revocation made afterwards still evicts the cached credential at once."""
    g: InProcess = await make_gateway()
    auth = basic(g.token, g.secret)
    assert await status_of(g.proxy + "/x", auth) == 200  # cached now
    for client_type in ("normal", "pubsub"):
        await kill_clients(redis_url, "TYPE", client_type)
    assert await until_status(g.proxy + "/x", auth, 200)
    # The invalidation listener resubscribes; give it the same 1 s bound as revocation.
    async with aiohttp.ClientSession() as s, \
            s.delete(g.admin + f"/admin/api/tokens/{g.token}", headers=admin_headers()) as r:
        assert r.status == 200
    assert await until_status(g.proxy + "/x", auth, 401, seconds=1.0)


async def test_store_hanging_is_503_then_recovers(make_gateway, redis_server) -> None:  # type: ignore[no-untyped-def]
    """While Redis does not answer, a cached credential still gets 503, never a pass-through;
    once it answers again, 200."""
    g: InProcess = await make_gateway({"store": {"timeout_seconds": 0.3}})
    auth = basic(g.token, g.secret)
    assert await status_of(g.proxy + "/x", auth) == 200  # the credential is cached
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        # Every client's commands wait for 2 s: each store call times out.
        await admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
        statuses = [await status_of(g.proxy + "/x", auth) for _ in range(2)]
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
    assert statuses == [503, 503]
    assert await until_status(g.proxy + "/x", auth, 200)
