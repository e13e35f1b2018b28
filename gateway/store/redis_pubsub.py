"""Cache invalidations through Redis pub/sub: publish, and one listener per process
that hands every message to the subscribed handlers."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from gateway.store.base import Invalidation, InvalidationHandler
from gateway.store.codec import _invalidation
from gateway.store.redis_base import RedisBase, _repeatable

log = logging.getLogger("tokengate.store")


class RedisPubSub(RedisBase):
    """Invalidations to and from every process sharing the store."""

    async def subscribe(self, handler: InvalidationHandler) -> None:
        """Start (once) a listener that delivers every invalidation to handlers."""
        self._handlers.append(handler)
        if self._listener is None:
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready))
            # Wait (briefly) until subscribed, so nothing published after this
            # returns can be missed.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ready.wait(), 5)

    @_repeatable  # a second invalidation only reloads caches
    async def publish(self, message: Invalidation) -> None:
        """Publish one invalidation to every process."""
        await self.client.publish(
            self.channel, _invalidation(message.kind, message.key, message.at))

    async def _dispatch(self, message: Invalidation | None) -> None:
        for handler in list(self._handlers):
            try:
                result = handler(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a broken handler must not stop invalidations
                log.exception("invalidation handler failed")

    async def _unsubscribe(self, client: Redis, pubsub: PubSub) -> None:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        if client is not self.client:  # a cluster node's own client
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _listen(self, ready: asyncio.Event) -> None:
        backoff = 0.1
        lost = False
        attempt = 0
        while True:
            client = self._subscriber(attempt)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                ready.set()
                backoff = 0.1
                if lost:
                    # Anything published while we were away is gone: drop all.
                    await self._dispatch(None)
                    lost = False
                while True:
                    msg = await pubsub.get_message(timeout=30.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        d = orjson.loads(msg["data"])
                        inv = Invalidation(str(d["kind"]), str(d["key"]), float(d["at"]))
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        inv = None  # unknown message: be safe, drop everything
                    await self._dispatch(inv)
            except asyncio.CancelledError:
                await self._unsubscribe(client, pubsub)
                raise
            except (RedisError, OSError) as exc:
                # Messages may have been lost while disconnected: tell handlers
                # to drop everything they cached, then resubscribe.
                log.warning("invalidation listener lost redis: %s", type(exc).__name__)
                lost = True
                attempt += 1  # on a cluster, through the next node
                await self._dispatch(None)
                await self._unsubscribe(client, pubsub)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
