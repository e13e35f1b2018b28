"""Keeps ``tokengate_tokens_expiring`` current: a store scan per interval, by one replica.

Counting means reading every token record, too much for every replica to
do. So each interval the replica that takes a short lease (Redis ``SET NX
PX``) scans and keeps the counts in the store; every other replica reads
those counts (one small read). All replicas therefore publish the same
figures, fresh to within an interval, and an alert aggregating over them
sees one value. With the memory store the lease is this process's alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.policy.expiring import ExpiringCounts
from gateway.store.base import Store, StoreError

if TYPE_CHECKING:
    from gateway.metrics import Metrics

log = logging.getLogger("tokengate.expiry")
LEASE = "expiring"
# The lease ends a little before the holder's next turn, so the holder can
# normally take it again; at worst two replicas scan in one interval.
LEASE_SHARE = 0.9


class ExpiryWatch:
    """Refreshes the expiring-tokens gauge every ``interval`` seconds until stopped."""

    def __init__(self, store: Store, metrics: Metrics, *, interval: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self.clock = clock
        self.holder = secrets.token_hex(8)  # names this process as the lease's holder
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> ExpiringCounts:
        """One turn: scan if this process takes the lease, else read the holder's counts."""
        if await self.store.claim_lease(LEASE, self.holder, self.interval * LEASE_SHARE):
            counts = await self.store.refresh_expiring(self.clock())
        else:
            counts = await self.store.load_expiring()
        self.metrics.expiring(counts)
        return counts

    def start(self) -> None:
        """Run :meth:`refresh` now and then every interval, in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except StoreError as exc:
                # The gauge keeps its last values; the next turn tries again.
                log.warning("expiring-token counts not refreshed: %s", exc)
            except Exception:  # a bug here must not end the refreshing for good
                log.exception("expiring-token counts not refreshed")
            await asyncio.sleep(self.interval)
