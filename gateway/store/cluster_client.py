"""The control plane on a Redis Cluster: the few redis-py calls the store makes,
answered through the slot router (``cluster.SlotRouter``) instead of redis-py's
cluster client.

Why not redis-py's ``RedisCluster`` (8.1): under concurrent calls it ran
writes twice. Its lazy first initialisation, and every re-initialisation
(after a lost node, or every few ``MOVED``), closes connections that other
calls are still reading from and then retries those calls, which had already
run: ten concurrent ``INCR`` on a new client left some keys at 2, and a user
created that way answers 409 to its own creation. It also sends ``ASKING`` on
one pooled connection and the command on another, and fails calls past
``max_connections`` per node instead of waiting. The router never resends a
command that may have run (only a redirection, which ran nowhere), pipelines
everything for a node on one connection, and waits for nothing but replies.

Replies have the shapes redis-py gives (bytes, dict, set, list), so the
store's parts work unchanged over either client.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from gateway.store.cluster import SlotRouter
from gateway.store.resp import RespReplyError, pack


def _dict(flat: list[Any]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class ClusterScript:
    """A Lua script run by EVALSHA on its first key's node (EVAL once per node
    that does not know it yet: a new node, a promoted replica)."""

    def __init__(self, router: SlotRouter, text: str) -> None:
        self._router = router
        self._text = text
        self._sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        """Run the script; its reply."""
        if not keys:
            raise ValueError("a cluster script is routed by its first key: declare one")
        tail = [len(keys), *keys, *args]
        try:
            return await self._router.call(pack("EVALSHA", self._sha, *tail), key=keys[0])
        except RespReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self._router.call(pack("EVAL", self._text, *tail), key=keys[0])


class ClusterPipeline:
    """Commands queued, then sent at once (each to its slot's node, replies in order)."""

    def __init__(self, client: ClusterClient) -> None:
        self._client = client
        self._queued: list[Callable[[], Awaitable[Any]]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._queued.clear()

    def hgetall(self, key: str) -> ClusterPipeline:
        """Queue HGETALL."""
        self._queued.append(lambda: self._client.hgetall(key))
        return self

    def hmget(self, key: str, fields: Sequence[str]) -> ClusterPipeline:
        """Queue HMGET."""
        self._queued.append(lambda: self._client.hmget(key, fields))
        return self

    def smembers(self, key: str) -> ClusterPipeline:
        """Queue SMEMBERS."""
        self._queued.append(lambda: self._client.smembers(key))
        return self

    def zrange(self, key: str, start: int, end: int) -> ClusterPipeline:
        """Queue ZRANGE."""
        self._queued.append(lambda: self._client.zrange(key, start, end))
        return self

    def lrange(self, key: str, start: int, end: int) -> ClusterPipeline:
        """Queue LRANGE."""
        self._queued.append(lambda: self._client.lrange(key, start, end))
        return self

    async def execute(self) -> list[Any]:
        """Send everything queued; the replies in order."""
        queued, self._queued = self._queued, []
        return list(await asyncio.gather(*(call() for call in queued)))


class ClusterClient:
    """The redis-py calls the store makes, on a cluster through its slot router."""

    def __init__(self, router: SlotRouter) -> None:
        self.router = router

    async def _on(self, key: str, *command: str | bytes | int) -> Any:
        return await self.router.call(pack(*command), key=key)

    def register_script(self, text: str) -> ClusterScript:
        """A script object called as ``script(keys=[...], args=[...])``."""
        return ClusterScript(self.router, text)

    def pipeline(self, transaction: bool = False) -> ClusterPipeline:
        """A pipeline without a transaction (a cluster has none across slots)."""
        if transaction:
            raise ValueError("the cluster store uses scripts, not transactions")
        return ClusterPipeline(self)

    async def ping(self) -> bool:
        """Every primary answers and reports the cluster ok."""
        await self.router.check_state()
        return True

    async def get(self, key: str) -> bytes | None:
        """GET."""
        reply: bytes | None = await self._on(key, "GET", key)
        return reply

    async def set(self, key: str, value: str, *, nx: bool = False,
                  px: int | None = None) -> bool | None:
        """SET (NX, PX); True if set."""
        options: list[str | int] = ["NX"] if nx else []
        if px is not None:
            options += ["PX", px]
        reply = await self._on(key, "SET", key, value, *options)
        return True if reply == b"OK" else None

    async def exists(self, key: str) -> int:
        """EXISTS of one key."""
        return int(await self._on(key, "EXISTS", key))

    async def delete(self, *keys: str) -> int:
        """DEL, one call per key (keys of other slots are other nodes' business)."""
        return sum([int(await self._on(key, "DEL", key)) for key in keys])

    async def hget(self, key: str, field: str) -> bytes | None:
        """HGET."""
        reply: bytes | None = await self._on(key, "HGET", key, field)
        return reply

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        """HGETALL."""
        return _dict(await self._on(key, "HGETALL", key))

    async def hmget(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        """HMGET."""
        return list(await self._on(key, "HMGET", key, *fields))

    async def hset(self, key: str, *, mapping: Mapping[str, str]) -> int:
        """HSET of several fields."""
        return int(await self._on(key, "HSET", key, *(x for kv in mapping.items() for x in kv)))

    async def sadd(self, key: str, *members: str) -> int:
        """SADD."""
        return int(await self._on(key, "SADD", key, *members))

    async def smembers(self, key: str) -> builtins.set[bytes]:
        """SMEMBERS."""
        return set(await self._on(key, "SMEMBERS", key))

    async def zrange(self, key: str, start: int, end: int) -> list[bytes]:
        """ZRANGE by rank."""
        reply: list[bytes] = await self._on(key, "ZRANGE", key, start, end)
        return reply

    async def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        """LRANGE."""
        reply: list[bytes] = await self._on(key, "LRANGE", key, start, end)
        return reply

    async def zadd(self, key: str, mapping: Mapping[str, float]) -> int:
        """ZADD member score pairs."""
        pairs = [x for member, score in mapping.items() for x in (repr(score), member)]
        return int(await self._on(key, "ZADD", key, *pairs))

    async def scan_iter(self, match: str, count: int = 1000) -> AsyncIterator[bytes]:
        """SCAN every primary for keys matching ``match``."""
        if not self.router.primaries():
            await self.router.refresh()
        for node in self.router.primaries():
            conn, cursor = self.router.connection(node), b"0"
            while True:
                cursor, keys = await conn.call(pack("SCAN", cursor, "MATCH", match,
                                                    "COUNT", count))
                for key in keys:
                    yield key
                if cursor == b"0":
                    break

    async def publish(self, channel: str, message: bytes | str) -> int:
        """PUBLISH (any node: a cluster delivers it on every node)."""
        return int(await self._on(channel, "PUBLISH", channel, message))

    async def aclose(self) -> None:
        """Close every connection."""
        await self.router.close()
