"""Coalesce ``last_used_at`` writes: remember in memory, flush in batches.

A store write per request would double the hot path's round trips. Instead
each process keeps the newest use per token and writes them all in one call
every ``interval`` seconds (and at shutdown), which keeps ``last_used_at``
within ``interval`` of the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.store.base import Store, StoreError

log = logging.getLogger("tokengate.lastused")

FLUSH_INTERVAL = 15.0


class LastUsed:
    """Pending last-use times, flushed periodically to the store."""

    def __init__(self, store: Store, *, interval: float = FLUSH_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self._pending: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def mark(self, token: str, now: float) -> None:
        """Note that ``token`` was used at ``now`` (no I/O)."""
        self._pending[token] = now

    async def flush(self) -> None:
        """Write every pending time in one store call."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            await self.store.touch(batch)
        except StoreError:
            # Keep them for the next try; newer marks win.
            for token, ts in batch.items():
                self._pending.setdefault(token, ts)
            log.warning("could not record last_used_at; will retry")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    def start(self) -> None:
        """Start the periodic flush."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the periodic flush and write what is pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
