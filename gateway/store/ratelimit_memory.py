"""Sliding-window rate limits held in this process, for the ``memory://`` store.

It calls the reference decision in :mod:`gateway.policy.ratelimit` directly,
so it cannot drift from it. The checks never await, so each one is atomic on
the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.policy.ratelimit import (
    RateDecision,
    Reservation,
    decide,
    decide_both,
    peek,
    refund,
    to_micros,
    window_micros,
)

# Idle keys are swept every max(_SWEEP_EVERY, number of keys) checks, so a
# sweep's O(keys) cost is O(1) amortised per check.
_SWEEP_EVERY = 1024


@dataclass(slots=True)
class _Window:
    log: list[int]
    window_us: int


class MemoryRateLimiter:
    """Per-key logs of admitted timestamps; each log holds at most ``limit`` entries.

    ``clock`` returns epoch seconds (tests inject a fake one).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._checks = 0

    def __len__(self) -> int:
        """How many keys are held (idle ones linger until the next sweep)."""
        return len(self._windows)

    async def hit(
        self, key: str, limit: int, window_seconds: float, *, now_us: int | None = None
    ) -> RateDecision:
        """Admit and record a request for ``key`` if its window has room."""
        now = self._now(now_us)
        window_us = window_micros(window_seconds)
        held = self._windows.get(key)
        decision, log = decide(held.log if held else (), now, limit, window_us)
        if log:
            self._windows[key] = _Window(log, window_us)
        else:
            self._windows.pop(key, None)
        self._maybe_sweep(now)
        return decision

    async def reserve(
        self, key: str, limit: int, window_seconds: float, *, now_us: int | None = None
    ) -> Reservation:
        """:meth:`hit`, also saying when the admission was recorded (for :meth:`refund`)."""
        now = self._now(now_us)
        decision = await self.hit(key, limit, window_seconds, now_us=now)
        return Reservation(decision, now if decision.allowed else None)

    async def refund(
        self, key: str, limit: int, window_seconds: float, *, at_us: int,
        now_us: int | None = None,
    ) -> RateDecision:
        """Take back the admission :meth:`reserve` recorded at ``at_us``; the window after."""
        now = self._now(now_us)
        window_us = window_micros(window_seconds)
        held = self._windows.get(key)
        decision, log = refund(held.log if held else (), now, at_us, limit, window_us)
        if log:
            self._windows[key] = _Window(log, window_us)
        else:
            self._windows.pop(key, None)
        return decision

    async def peek(
        self, key: str, limit: int, window_seconds: float, *, now_us: int | None = None
    ) -> RateDecision:
        """Whether a request for ``key`` would be admitted now, recording nothing."""
        now = self._now(now_us)
        held = self._windows.get(key)
        return peek(held.log if held else (), now, limit, window_micros(window_seconds))

    async def hit_both(
        self, first: tuple[str, int, float], second: tuple[str, int, float],
        *, now_us: int | None = None,
    ) -> tuple[RateDecision, RateDecision]:
        """Admit a request into both windows (key, limit, window_seconds) or neither."""
        now = self._now(now_us)
        windows_us = (window_micros(first[2]), window_micros(second[2]))
        held = [self._windows.get(first[0]), self._windows.get(second[0])]
        decision_a, decision_b, log_a, log_b = decide_both(
            held[0].log if held[0] else (), held[1].log if held[1] else (), now,
            (first[1], second[1]), windows_us)
        for key, log, window_us in ((first[0], log_a, windows_us[0]),
                                    (second[0], log_b, windows_us[1])):
            if log:
                self._windows[key] = _Window(log, window_us)
            else:
                self._windows.pop(key, None)
        self._maybe_sweep(now)
        return decision_a, decision_b

    def sweep(self, now_us: int | None = None) -> None:
        """Drop every key whose entries have all left their window."""
        now = self._now(now_us)
        idle = [k for k, w in self._windows.items() if w.log[-1] <= now - w.window_us]
        for key in idle:
            del self._windows[key]

    def _now(self, now_us: int | None) -> int:
        return to_micros(self._clock()) if now_us is None else now_us

    def _maybe_sweep(self, now_us: int) -> None:
        self._checks += 1
        if self._checks >= max(_SWEEP_EVERY, len(self._windows)):
            self._checks = 0
            self.sweep(now_us)
