"""The store fixture: every contract test runs on the memory store, on real Redis, and on
real Redis found through Redis Sentinel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from tests.conftest import FakeClock


@pytest.fixture(params=["memory", "redis", "sentinel"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Store]:
    """A Store implementation; the same tests run on both."""
    if request.param == "memory":
        s: Store = MemoryStore(clock=clock)
    elif request.param == "redis":
        s = RedisStore(request.getfixturevalue("redis_url"))
    else:  # the same Redis, found through Sentinel (an unreachable sentinel listed first)
        request.getfixturevalue("redis_url")  # flushed per test
        s = RedisStore(request.getfixturevalue("sentinel_server").url(dead_first=True))
    yield s
    await s.close()
