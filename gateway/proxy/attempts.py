"""Count-first failure budgets for secrets that are guessed: a slot before the compare.

A failure counted after its verdict lets a parallel burst through: every
guess passes the check before any is counted. So an attempt takes a slot
of its source's budget *before* the secret is compared, and a right secret
gives exactly that slot back. A burst gets at most ``limit`` verdicts;
every later attempt, the right secret included, is a 429 (the limit is no
oracle). A source is the client address, or its /64 for IPv6.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.policy.errors import TooManyRequests
from gateway.proxy.auth import client_key
from gateway.store.base import Store

if TYPE_CHECKING:
    from gateway.config import AttemptLimit


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt holding a slot of its source's budget."""

    source: str
    budget: str
    at_us: int  # when the slot was taken, to give back exactly it
    attempts: int  # in the budget's window, this one included


class AttemptBudget:
    """One kind of secret's failure budget (``prefix`` names it in the store)."""

    def __init__(self, store: Store, *, prefix: str, limits: AttemptLimit, what: str,
                 on_throttled: Callable[[], None] | None = None) -> None:
        self.store = store
        self.prefix = prefix
        self.limits = limits
        self.what = what
        self.on_throttled = on_throttled

    async def reserve(self, address: str) -> Attempt:
        """Take a slot of the source's budget; 429 when none is left (nothing compared)."""
        source = client_key(address)
        budget = self.prefix + source
        reservation = await self.store.reserve_rate_limit(
            budget, self.limits.limit, self.limits.window_seconds)
        decision = reservation.decision
        if not decision.allowed or reservation.at_us is None:
            if self.on_throttled is not None:
                self.on_throttled()
            raise TooManyRequests(
                f"too many refused {self.what} attempts from this address; slow down",
                headers={"Retry-After": str(max(1, math.ceil(decision.retry_after)))},
            )
        return Attempt(source, budget, reservation.at_us, decision.limit - decision.remaining)

    async def refund(self, attempt: Attempt) -> None:
        """Give the slot back: the secret was right."""
        await self.store.refund_rate_limit(attempt.budget, self.limits.limit,
                                           self.limits.window_seconds, at_us=attempt.at_us)
