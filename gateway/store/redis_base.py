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
import functools
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.store.base import InvalidationHandler, StoreError
from gateway.store.codec import _s
from gateway.store.layout import Layout
from gateway.store.ratelimit_redis import RedisRateLimiter
from gateway.store.resp import RespConnection, RespError
from gateway.store.sentinel import SCHEME as SENTINEL_SCHEME
from gateway.store.sentinel import BlockingSentinelPool, parse_sentinel_url

DEFAULT_MAX_CONNECTIONS = 100
SCRIPTS = ("credential", "create_token", "revoke_token", "revoke_all", "remove_user", "touch",
           "trusted_enable", "trusted_disable", "trusted_bearer", "trusted_revoke")
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
    """Connections to one Redis server (``redis://``, ``rediss://``, ``unix://``), or to
    the master that Sentinel names (``redis+sentinel://``)."""

    def __init__(self, url: str, *, prefix: str = "tg:", timeout: float = 2.0,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.prefix = prefix
        self.keys = Layout(prefix)
        self.channel = self.keys.channel
        # A waiting pool: under a burst, calls queue for a free connection (for
        # at most ``timeout``) instead of failing, as redis-py's default pool
        # does past its size. The pub/sub listener holds one connection of it;
        # the hot-path rate-limit call has its own (RespConnection).
        # RESP2: under RESP3 (redis-py 8's default) redis-py 8.1 skips the
        # check that replaces a pooled connection the server closed while it
        # sat idle (redis/redis-py#4252), so the next call on it failed.
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                   "health_check_interval": 30, "protocol": 2,
                                   "max_connections": max_connections, "timeout": timeout}
        self._sentinel: Sentinel | None = None
        if url.startswith(SENTINEL_SCHEME + "://"):
            target = parse_sentinel_url(url)
            # Ask each sentinel once, without retries: an unreachable one must
            # not use up the whole store timeout before the next is asked.
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.hosts),
                sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                 "retry": Retry(NoBackoff(), 0)})
            self._sentinel = sentinel
            self.client: aioredis.Redis = sentinel.master_for(
                target.service, db=target.db, username=target.username,
                password=target.password, connection_pool_class=BlockingSentinelPool,
                **options)
            auth = f"{target.username or ''}:{quote(target.password or '')}@" \
                if target.password else ""

            async def master() -> tuple[str, int]:
                host, port = await sentinel.discover_master(target.service)
                return str(host), int(port)

            self._fast = RespConnection(f"redis://{auth}sentinel/{target.db}",
                                        timeout=timeout, resolve=master)
        else:
            self.client = aioredis.Redis.from_pool(
                aioredis.BlockingConnectionPool.from_url(url, **options))
            self._fast = RespConnection(url, timeout=timeout)
        self._limiter = RedisRateLimiter(self.client, prefix, fast=self._fast)
        self._scripts = {name: self.client.register_script(_lua(name)) for name in SCRIPTS}
        self._listener: asyncio.Task[None] | None = None
        self._handlers: list[InvalidationHandler] = []

    @_repeatable
    async def ping(self) -> None:
        """Raise StoreError unless Redis answers."""
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
