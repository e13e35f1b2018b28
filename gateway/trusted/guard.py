"""The ``secret_key`` failure budget and the audit of refused keys.

Two rules keep hostile traffic on the public token endpoints from doing
harm beyond a 401:

* **Count first.** Every attempt takes a slot of its source's budget
  *before* the key is compared, and a right key gives its slot back. A
  burst of parallel guesses therefore gets at most ``limit`` verdicts; every
  later attempt, the right key included, is a 429 (no oracle).
* **Throttle, then audit, aggregated.** Only attempts that got a verdict can
  be audited, and a source's refusals for one workspace become one event
  per interval (at most ``audit_events_per_interval`` per workspace). A key
  refused for a workspace without trusted authentication (or that does not
  exist) is audited in the operator's security list, never a tenant's.

A source is the client address, or its /64 for IPv6 (``proxy.auth.client_key``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import TrustedAuthSection
from gateway.lifecycle import Lifecycle
from gateway.policy.model import NO_WORKSPACE
from gateway.proxy.attempts import Attempt, AttemptBudget

if TYPE_CHECKING:
    from gateway.metrics import Metrics

REFUSED_EVENT = "trusted_auth.key_refused"
REFUSED_ACTOR = "anonymous"
BUDGET_PREFIX = "trustedkey:"
AUDIT_PREFIX = "trustedaudit:"


class KeyGuard:
    """Reserves, refunds and audits ``secret_key`` attempts for one gateway."""

    def __init__(self, *, lifecycle: Lifecycle, config: TrustedAuthSection,
                 metrics: Metrics | None = None) -> None:
        self.lifecycle = lifecycle
        self.store = lifecycle.store
        self.config = config
        self.metrics = metrics
        self.budget = AttemptBudget(
            self.store, prefix=BUDGET_PREFIX, limits=config.key_failures, what="secret_key",
            on_throttled=metrics.trusted_key_throttled if metrics is not None else None)

    async def reserve(self, client: str) -> Attempt:
        """Take a slot of the source's budget; 429 when none is left (nothing compared)."""
        return await self.budget.reserve(client)

    async def refund(self, attempt: Attempt) -> None:
        """Give the slot back: the key was right."""
        await self.budget.refund(attempt)

    async def refused(self, attempt: Attempt, *, workspace: str, known: bool, reason: str,
                      endpoint: str) -> None:
        """Audit a refused key, unless an event of this interval already stands for it.

        ``known`` says whether ``workspace`` has trusted authentication (so it
        exists); otherwise the event goes to the security list.
        """
        audit_ws = workspace if known else NO_WORKSPACE
        interval = self.config.audit_interval_seconds
        bucket = f"{AUDIT_PREFIX}{audit_ws or '*'}"
        first = await self.store.hit_rate_limit(f"{bucket}:{attempt.source}", 1, interval)
        if first.allowed:
            room = await self.store.hit_rate_limit(
                bucket, self.config.audit_events_per_interval, interval)
            if room.allowed:
                await self.lifecycle.audit(
                    REFUSED_EVENT, REFUSED_ACTOR, workspace, audit_ws, client=attempt.source,
                    reason=reason, endpoint=endpoint, org_id=workspace,
                    attempts_in_window=attempt.attempts, interval_seconds=interval)
                return
        if self.metrics is not None:
            self.metrics.audit_event_suppressed()
