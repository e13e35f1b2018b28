"""Stores: one interface, a Redis and a memory implementation."""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.store.base import AlreadyExists, Invalidation, Store, StoreError

__all__ = ["AlreadyExists", "Invalidation", "Store", "StoreError", "open_store"]


def open_store(url: str, *, prefix: str = "tg:", timeout: float = 2.0,
               max_connections: int | None = None) -> Store:
    """The store for a URL: ``redis://``, ``rediss://``, ``unix://``,
    ``redis+sentinel://``, ``redis+cluster://``, ``rediss+cluster://`` or ``memory://``."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from gateway.store.memory import MemoryStore

        return MemoryStore()
    if scheme in ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "rediss+cluster"):
        from gateway.store.redis import RedisStore

        if max_connections is None:
            return RedisStore(url, prefix=prefix, timeout=timeout)
        return RedisStore(url, prefix=prefix, timeout=timeout, max_connections=max_connections)
    raise ValueError(f"unsupported store URL scheme {scheme!r}")
