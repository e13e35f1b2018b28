"""The store fixture: every contract test runs on the memory store, on real Redis, on
real Redis found through Redis Sentinel, and on a real three-primary Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from tests.conftest import FakeClock


@pytest.fixture(params=["memory", "redis", "sentinel", "cluster"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Store]:
    """A Store implementation; the same tests run on both."""
    if request.param == "memory":
        s: Store = MemoryStore(clock=clock)
    elif request.param == "redis":
        s = RedisStore(request.getfixturevalue("redis_url"))
    elif request.param == "sentinel":  # the same Redis, found through Sentinel
        request.getfixturevalue("redis_url")  # flushed per test
        # (an unreachable sentinel listed first)
        s = RedisStore(request.getfixturevalue("sentinel_server").url(dead_first=True))
    else:
        s = RedisStore(request.getfixturevalue("cluster_url"))
    yield s
    await s.close()
