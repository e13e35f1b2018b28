"""The lean pipelined Redis connection used on the hot path, against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.store.ratelimit_redis import RedisRateLimiter
from gateway.store.resp import RespConnection, RespError, RespReplyError, pack
from tests.conftest import free_port


def test_pack_is_resp_array_of_bulk_strings() -> None:
    """Commands are packed as RESP arrays of bulk strings (str, bytes and ints)."""
    assert pack("SET", b"k", 12) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    assert pack("ECHO", "é") == b"*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n"


async def test_concurrent_calls_get_their_own_replies(redis_url: str) -> None:
    """Many in-flight commands on one connection each receive their own reply, in order."""
    conn = RespConnection(redis_url)
    try:
        replies = await asyncio.gather(*(conn.call(pack("ECHO", f"m{i}")) for i in range(200)))
        assert replies == [f"m{i}".encode() for i in range(200)]
    finally:
        await conn.close()


async def test_error_reply_raises_and_connection_stays_usable(redis_url: str) -> None:
    """A Redis error reply raises RespError without breaking the following calls."""
    conn = RespConnection(redis_url)
    try:
        with pytest.raises(RespError, match="ERR"):
            await conn.call(pack("NOSUCHCOMMAND"))
        assert await conn.call(pack("PING")) == b"PONG"
    finally:
        await conn.close()


async def test_unreachable_server_raises_resp_error() -> None:
    """A refused connection is a RespError (the store turns it into 503)."""
    conn = RespConnection(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with pytest.raises(RespError):
        await conn.call(pack("PING"))


async def test_reconnects_after_the_server_drops_it(redis_url: str) -> None:
    """After Redis kills the connection, the next call reconnects and works."""
    conn = RespConnection(redis_url)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        my_id = await conn.call(pack("CLIENT", "ID"))
        await admin.execute_command("CLIENT", "KILL", "ID", my_id)
        for _ in range(50):  # the close reaches us asynchronously
            try:
                if await conn.call(pack("PING")) == b"PONG":
                    break
            except RespError:
                continue
        assert await conn.call(pack("CLIENT", "ID")) != my_id
    finally:
        await conn.close()
        await admin.aclose()


async def test_selects_the_database_in_the_url(redis_url: str) -> None:
    """The database number in the URL is selected on connect."""
    url = redis_url.rsplit("/", 1)[0] + "/3"
    conn = RespConnection(url)
    admin = aioredis.Redis.from_url(url)
    try:
        await conn.call(pack("SET", "resp-db-test", "yes"))
        assert await admin.get("resp-db-test") == b"yes"
    finally:
        await admin.delete("resp-db-test")
        await conn.close()
        await admin.aclose()


async def test_rate_limit_survives_script_flush(redis_url: str) -> None:
    """After SCRIPT FLUSH the fast path falls back to EVAL and keeps counting."""
    client = aioredis.Redis.from_url(redis_url)
    conn = RespConnection(redis_url)
    limiter = RedisRateLimiter(client, fast=conn)
    try:
        assert (await limiter.hit("k", 2, 10)).remaining == 1
        await client.script_flush()
        assert (await limiter.hit("k", 2, 10)).remaining == 0
        assert not (await limiter.hit("k", 2, 10)).allowed
    finally:
        await conn.close()
        await client.aclose()


async def test_readonly_reply_drops_the_connection(redis_server) -> None:  # type: ignore[no-untyped-def]
    """A READONLY answer (the master moved in a failover) makes the next call reconnect."""
    import shutil
    import subprocess
    import tempfile

    from tests.conftest import free_port

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tokengate-replica-")
    replica = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--dir", workdir, "--replicaof", "127.0.0.1",
         str(redis_server.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = RespConnection(f"redis://127.0.0.1:{port}/0", timeout=2)
    try:
        for _ in range(200):
            try:
                first = await conn.call(pack("CLIENT", "ID"))
                break
            except RespError:
                await asyncio.sleep(0.02)
        with pytest.raises(RespError, match="READONLY"):
            await conn.call(pack("SET", "k", "v"))
        assert await conn.call(pack("CLIENT", "ID")) != first
    finally:
        await conn.close()
        replica.terminate()
        replica.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


async def test_call_many_sends_back_to_back_and_raises_the_last_error(redis_url: str) -> None:
    """Commands sent together (ASKING and its command) get their replies in order; an
    error reply to the last is raised as RespReplyError, and the connection stays usable."""
    conn = RespConnection(redis_url)
    try:
        assert await conn.call_many(pack("ECHO", "a"), pack("ECHO", "b")) == [b"a", b"b"]
        with pytest.raises(RespReplyError, match="NOSCRIPT"):
            await conn.call_many(pack("PING"), pack("EVALSHA", "0" * 40, 0))
        assert await conn.call(pack("PING")) == b"PONG"
    finally:
        await conn.close()
