"""check_master_key against both stores: first key recorded, any other refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.keycheck import check_master_key
from gateway.keys import Keys, MasterKeyError
from gateway.store import Store, open_store


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Store]:
    """A memory store, or a Redis store on the test Redis (emptied for each test)."""
    s = open_store("memory://" if request.param == "memory" else redis_url)
    yield s
    await s.close()


async def test_the_first_key_is_recorded_and_any_other_refused(store: Store) -> None:
    """The first check records the key; the same key passes again; another key is a
    MasterKeyError naming both check values' prefixes and neither key."""
    first, second = Keys.from_master(b"\x01" * 32), Keys.from_master(b"\x02" * 32)
    await check_master_key(store, first)
    await check_master_key(store, first)
    with pytest.raises(MasterKeyError) as info:
        await check_master_key(store, second)
    message = str(info.value)
    assert first.check_value()[:12] in message and second.check_value()[:12] in message
    assert first.check_value() not in message
    assert await store.claim_key_check(second.check_value()) == first.check_value()
