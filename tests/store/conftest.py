"""The store fixture: every contract test runs on the memory store and on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from tests.conftest import FakeClock


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Store]:
    """A Store implementation; the same tests run on both."""
    if request.param == "memory":
        s: Store = MemoryStore(clock=clock)
    else:
        s = RedisStore(request.getfixturevalue("redis_url"))
    yield s
    await s.close()
