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
from gateway.store.codec import _f, _pairs_dict, _s
from gateway.store.redis_base import RedisBase, _repeatable, _wrap_errors
from gateway.store.redis_tokens import TOUCH_BATCH


class RedisExpiring(RedisBase):
    """Leases, and the counts of tokens expiring soon."""

    @_wrap_errors
    async def claim_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """SET NX PX: True if this call took the lease."""
        ms = max(1, math.ceil(ttl_seconds * 1000))
        return bool(await self.client.set(self.keys.lease(name), holder, nx=True, px=ms))

    @_repeatable  # a scan and an overwrite of the same counts
    async def refresh_expiring(self, now: float) -> ExpiringCounts:
        """Read every workspace's tokens (pipelined, in slices) and keep the counts."""
        workspaces = sorted(_s(w) or "" for w in await self.client.smembers(self.keys.workspaces))
        rows: list[tuple[str, float | None, float | None]] = []
        for ws in workspaces:
            tokens = [_s(cast(bytes, t)) or "" for t in
                      await self.client.zrange(self.keys.ws(ws, "tokens"), 0, -1)]
            for i in range(0, len(tokens), TOUCH_BATCH):
                async with self.client.pipeline(transaction=False) as pipe:
                    for t in tokens[i:i + TOUCH_BATCH]:
                        pipe.hmget(self.keys.token(ws, t), ["type", "expires_at", "revoked_at"])
                    for kind, expires, revoked in await pipe.execute():
                        if kind is not None:
                            rows.append((_s(kind) or "", _f(_s(expires)), _f(_s(revoked))))
        counts = expiring_counts(rows, now)
        await self.client.hset(self.keys.expiring,
                               mapping=cast("Mapping[Any, Any]", counts_to_fields(counts)))
        return counts

    @_repeatable
    async def load_expiring(self) -> ExpiringCounts:
        """The counts the last refresh kept."""
        return counts_from_fields(_pairs_dict(await self.client.hgetall(self.keys.expiring)))
