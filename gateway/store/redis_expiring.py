"""The expiry watch in Redis: a short lease so one replica counts per interval,
and the counts it keeps for every replica's gauge (``gateway/expirywatch.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from gateway.policy.expiring import (
    ExpiringCounts,
    counts_from_fields,
    counts_to_fields,
    expiring_counts,
)
from gateway.store.codec import _pairs_dict
from gateway.store.redis_base import _repeatable, _wrap_errors
from gateway.store.redis_tokens import RedisTokens


class RedisExpiring(RedisTokens):
    """Leases, and the counts of tokens expiring soon."""

    @_wrap_errors
    async def claim_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """SET NX PX: True if this call took the lease."""
        ms = max(1, math.ceil(ttl_seconds * 1000))
        return bool(await self.client.set(self.keys.lease(name), holder, nx=True, px=ms))

    @_wrap_errors  # the listing it reads repeats itself; the overwrite is idempotent
    async def refresh_expiring(self, now: float) -> ExpiringCounts:
        """Count every workspace's tokens expiring soon (the listing's read) and keep the counts."""
        counts = expiring_counts(((r.type.value, r.expires_at, r.revoked_at)
                                  for r in await self.list_tokens(None)), now)
        await self.client.hset(self.keys.expiring,
                               mapping=cast("Mapping[Any, Any]", counts_to_fields(counts)))
        return counts

    @_repeatable
    async def load_expiring(self) -> ExpiringCounts:
        """The counts the last refresh kept."""
        return counts_from_fields(_pairs_dict(await self.client.hgetall(self.keys.expiring)))
