"""What every part of the Redis store shares: the connections, the scripts, and
how Redis failures become :class:`StoreError`.

The store is split by what it stores (``redis_users``, ``redis_tokens``,
``redis_workspaces``, ``redis_trusted``, ``redis_pubsub``); each part is a
subclass of :class:`RedisBase`, and ``redis.RedisStore`` puts them together.
Key names come from ``layout`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
from collections.abc import Awaitable, Callable, Coroutine
from importlib import resources
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from gateway.store.base import AlreadyExists, InvalidationHandler, StoreError
from gateway.store.cluster import SCHEMES as CLUSTER_SCHEMES
from gateway.store.cluster import SlotRouter, parse_cluster_url
from gateway.store.cluster_client import ClusterClient
from gateway.store.codec import _pairs, _s
from gateway.store.layout import VERSION, Layout, LegacyLayout, StoreMismatch, new_claim
from gateway.store.ratelimit_redis import RedisRateLimiter
from gateway.store.resp import HotPath, RespConnection, RespError
from gateway.store.sentinel import SCHEME as SENTINEL_SCHEME
from gateway.store.sentinel import BlockingSentinelPool, parse_sentinel_url

DEFAULT_MAX_CONNECTIONS = 100
INDEX_TRIES = 5
CLAIM_GRACE_MS = 30_000  # far beyond any store timeout: an add still under way
SCRIPTS = ("credential", "create_token", "revoke_token", "revoke_all", "remove_user", "touch",
           "create_user", "uncreate_user", "dir_claim", "dir_release", "settings", "audit",
           "bearer_create", "trusted_enable", "trusted_disable", "trusted_bearer",
           "trusted_revoke", "trusted_unclaim", "migrate_replace", "roll_token",
           "set_token_field")
Client = aioredis.Redis | ClusterClient
P = ParamSpec("P")
T = TypeVar("T")


def _lua(name: str) -> str:
    return resources.files("gateway.store").joinpath(f"lua/{name}.lua").read_text()


def _wrap_errors(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn any Redis failure into StoreError, so callers fail closed with 503."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError, RespError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}") from exc

    return wrapper


def _repeatable(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """``_wrap_errors``, and one more try when Redis dropped the connection under the call.

    A dropped connection (killed, reset, a restart, a failover) leaves unknown
    whether a write already ran, so only calls whose repeat changes nothing and
    answers the same carry this: reads, and the idempotent writes (each says
    why). The others (adding users, creating tokens, revoke-all, user removal,
    audit events, rate-limit counts) answer 503 instead of risking a double.
    """

    @functools.wraps(fn)
    async def again(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except RedisConnectionError as exc:
            # The pool's wait for a free connection running out is reported as
            # a ConnectionError too: waiting again would only double the delay.
            if isinstance(exc.__cause__, TimeoutError):
                raise
        # redis-py closed the failed connection; this try opens a new one.
        return await fn(*args, **kwargs)

    return _wrap_errors(again)


class RedisBase:
    """Connections to one Redis server (``redis://``, ``rediss://``, ``unix://``), to
    the master that Sentinel names (``redis+sentinel://``), or to a Redis Cluster
    (``redis+cluster://``, ``rediss+cluster://``); the same key layout on each."""

    def __init__(self, url: str, *, prefix: str = "tg:", timeout: float = 2.0,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.prefix = prefix
        self.keys = Layout(prefix)
        self.channel = self.keys.channel
        self._timeout = timeout
        # A waiting pool: under a burst, calls queue for a free connection (for
        # at most ``timeout``) instead of failing, as redis-py's default pool
        # does past its size. The pub/sub listener holds one connection of it;
        # the hot-path rate-limit call has its own (RespConnection).
        # RESP2: under RESP3 (redis-py 8's default) redis-py 8.1 skips the
        # check that replaces a pooled connection the server closed while it
        # sat idle (redis/redis-py#4252), so the next call on it failed.
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                   "health_check_interval": 30, "protocol": 2,
                                   "max_connections": max_connections}
        self._sentinel: Sentinel | None = None
        self._router: SlotRouter | None = None
        self._fast: HotPath
        if url.startswith(SENTINEL_SCHEME + "://"):
            self.client: Client = self._sentinel_client(url, options)
        elif url.startswith(CLUSTER_SCHEMES):
            target = parse_cluster_url(url)
            # One router for the hot path and the control plane alike (see
            # cluster_client.py for why not redis-py's cluster client).
            self._router = SlotRouter(target, timeout=timeout)
            self._fast = self._router
            self.client = ClusterClient(self._router)
        else:
            self.client = aioredis.Redis.from_pool(
                aioredis.BlockingConnectionPool.from_url(url, timeout=timeout, **options))
            self._fast = RespConnection(url, timeout=timeout)
        self._limiter = RedisRateLimiter(self.client, prefix, fast=self._fast)
        self._scripts = {name: self.client.register_script(_lua(name)) for name in SCRIPTS}
        self._listener: asyncio.Task[None] | None = None
        self._handlers: list[InvalidationHandler] = []

    def _sentinel_client(self, url: str, options: dict[str, Any]) -> aioredis.Redis:
        target = parse_sentinel_url(url)
        timeout = self._timeout
        # Ask each sentinel once, without retries: an unreachable one must
        # not use up the whole store timeout before the next is asked.
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.hosts),
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout,
                             "retry": Retry(NoBackoff(), 0)})
        self._sentinel = sentinel
        auth = f"{target.username or ''}:{quote(target.password or '')}@" \
            if target.password else ""

        async def master() -> tuple[str, int]:
            host, port = await sentinel.discover_master(target.service)
            return str(host), int(port)

        self._fast = RespConnection(f"redis://{auth}sentinel/{target.db}",
                                    timeout=timeout, resolve=master)
        client: aioredis.Redis = sentinel.master_for(
            target.service, db=target.db, username=target.username, password=target.password,
            connection_pool_class=BlockingSentinelPool, timeout=timeout, **options)
        return client

    def _subscriber(self, attempt: int) -> aioredis.Redis:
        """The client the invalidation listener subscribes through, on its ``attempt``-th try.

        A cluster delivers a PUBLISH on every node, so any node will do; after
        a failure the listener moves on to the next (the URL's nodes first).
        """
        if self._router is None:
            return cast("aioredis.Redis", self.client)
        nodes = self._router.nodes()
        return aioredis.Redis.from_url(
            self._router.target.node_url(nodes[attempt % len(nodes)]),
            socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
            health_check_interval=30, protocol=2)

    @_repeatable
    async def ping(self) -> None:
        """Raise StoreError unless Redis answers (every primary, and the cluster is ok)."""
        if self._router is not None:
            await self._router.check_state()
        else:
            await self.client.ping()

    async def close(self) -> None:
        """Stop the listener and close connections."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await self._fast.close()
        await self.client.aclose()
        if self._sentinel is not None:
            for client in self._sentinel.sentinels:
                await client.aclose()

    @_repeatable  # a repeat finds the value the first try set, and answers it
    async def claim_key_check(self, value: str) -> str:
        """Record the master key's check value unless one is recorded; the recorded one."""
        key = self.keys.key_check
        if await self.client.set(key, value, nx=True):
            return value
        # Deleted in between (by an operator resetting it): this value may stand.
        return _s(await self.client.get(key)) or value

    @_repeatable  # SET NX: a repeat finds the version the first try recorded
    async def check_layout(self) -> None:
        """Raise StoreMismatch unless the store has this version's key layout (a new,
        empty store is given it), or if the URL names the wrong kind of Redis."""
        await self._check_kind()
        recorded = _s(await self.client.get(self.keys.version))
        if recorded is None:
            if await self._has_legacy_keys():
                recorded = "1"
            elif await self.client.set(self.keys.version, VERSION, nx=True):
                return
            else:
                recorded = _s(await self.client.get(self.keys.version))
        if recorded != VERSION:
            raise StoreMismatch(layout_message(recorded or "unknown"))

    async def _has_legacy_keys(self) -> bool:
        """Whether any key of layout 1 exists (a record or index it had and layout 2 renamed).

        One SCAN of the prefix, stopped at the first such key: paid once, by the
        first process that finds no layout recorded (nothing to scan in a new store).
        """
        patterns = LegacyLayout(self.prefix).patterns()
        async for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            name = _s(key) or ""
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                return True
        return False

    async def _check_kind(self) -> None:
        if self._router is not None:
            try:
                await self._router.refresh()
            except RespError as exc:
                if "cluster support disabled" in str(exc):
                    raise StoreMismatch(
                        "store.url is a redis+cluster:// URL but its nodes are not in cluster "
                        "mode; use redis://host:port for a single Redis") from None
                raise
            return
        try:
            info = await cast("aioredis.Redis", self.client).info("cluster")
        except ResponseError:
            return  # INFO refused (an ACL, a managed Redis): nothing to tell
        if int(info.get("cluster_enabled", 0) or 0):
            raise StoreMismatch(
                "store.url names a node of a Redis Cluster; a cluster needs "
                "redis+cluster://host:port[,host:port...] (rediss+cluster:// with TLS)")

    async def _claim_entry(self, key: str, ws: str, *, holds: Callable[[str], Awaitable[bool]],
                           keep_own: bool, taken: str) -> str:
        """Point a directory entry at ``ws``; its claim. AlreadyExists(``taken``) if the
        workspace it names ``holds`` the id (unless that is ``ws`` and ``keep_own``).

        An entry naming a workspace that does not hold the id was left by a
        crash or a removal; it is replaced, but one naming another workspace
        only once older than CLAIM_GRACE_MS: until then, an add there may
        still be completing, and this one is refused instead.
        """
        claim = new_claim()
        expected = ""
        for _ in range(INDEX_TRIES):
            res = await self._scripts["dir_claim"](
                keys=[key], args=[expected, "workspace", ws, "claim", claim])
            if int(res[0]) == 1:
                return claim
            current = _pairs(res[1])
            if not current:  # the entry we saw was released meanwhile
                expected = ""
                continue
            holder = current.get("workspace", "")
            if await holds(holder):
                if keep_own and holder == ws:
                    return current.get("claim", "")
                raise AlreadyExists(taken)
            if holder != ws and int(res[2]) < CLAIM_GRACE_MS:
                raise AlreadyExists(taken)
            expected = current.get("claim", "")  # stale: replace exactly that entry
        raise AlreadyExists(taken)

    async def _workspaces(self, workspace: str | None) -> list[str]:
        """The workspace named, or every workspace that holds anything (sorted)."""
        if workspace is not None:
            return [workspace]
        return sorted(_s(w) or "" for w in await self.client.smembers(self.keys.workspaces))

    async def _entry_workspace(self, key: str) -> str | None:
        """The workspace a directory entry names, or None."""
        return _s(await self.client.hget(key, "workspace"))

    async def _script_retrying(self, name: str, build: Callable[[], Awaitable[tuple[
            list[str], list[Any]]]], *, stale: int) -> Any:
        """Run a script whose keys come from an index read first; ``stale`` is its answer
        when the index changed in between, and the read and the call are tried again."""
        for _ in range(INDEX_TRIES):
            keys, args = await build()
            result = await self._scripts[name](keys=keys, args=args)
            if result != stale:
                return result
        raise StoreError(f"redis: the index {name} reads kept changing under it")


def layout_message(recorded: str) -> str:
    """Why ``serve`` refuses a store of another layout, and what to do."""
    if recorded.isdigit() and int(recorded) > int(VERSION):
        return (f"the store has key layout {recorded}, written by a newer tokengate "
                f"(this one reads layout {VERSION}); run the newer version")
    return (f"the store has key layout {recorded}; this tokengate needs layout {VERSION}: "
            "stop every gateway and run `tokengate store migrate`")
