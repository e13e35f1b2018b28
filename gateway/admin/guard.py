"""The admin listener's gate: the ``Host`` allow-list and the admin key's failure budget.

The admin key can do everything, so guessing it is throttled like a
password, per source (the client address, or its /64 for IPv6):

* **Count first.** Every attempt at ``/admin/api`` takes a slot of its
  source's ``admin.key_failures`` budget *before* the key is compared, and a
  right key gives the slot back. A burst of parallel guesses therefore gets
  at most ``limit`` verdicts; every later attempt, the right key included,
  is a 429 with ``Retry-After`` (so the limit is no oracle). The key is
  compared in constant time.
* **Audit, aggregated.** A source's refusals become one ``admin.key_refused``
  event per interval (the window of the budget) in the operator's security
  list (``NO_WORKSPACE``), not one per guess, so a flood cannot push other
  events out of the bounded audit log. Metrics count every refusal.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from gateway.config import AdminSection
from gateway.policy.errors import Problem, Unauthenticated
from gateway.policy.hosts import HostAllowList
from gateway.policy.model import NO_WORKSPACE, AuditEvent
from gateway.proxy.attempts import Attempt, AttemptBudget
from gateway.store.base import Store

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.metrics import Metrics

REFUSED_EVENT = "admin.key_refused"
REFUSED_ACTOR = "anonymous"
BUDGET_PREFIX = "adminkey:"
AUDIT_PREFIX = "adminaudit:"


class MisdirectedHost(Problem):
    """421: the admin listener does not answer for this ``Host``.

    421 rather than 403: nothing is wrong with the caller's rights, the
    request reached a server that is not configured for that authority
    (RFC 9110 §15.5.20), which is exactly the DNS-rebinding case.
    """

    status = 421
    type_slug = "misdirected-host"
    title = "Misdirected request"


def bad_admin_key() -> Unauthenticated:
    """The 401 for a missing or wrong admin key."""
    problem = Unauthenticated("a valid admin key is required", reason="malformed")
    problem.headers["WWW-Authenticate"] = 'Bearer realm="tokengate-admin"'
    return problem


class AdminGuard:
    """Checks the Host header and the admin key for one admin listener."""

    def __init__(self, *, config: AdminSection, store: Store, metrics: Metrics,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.clock = clock
        key = config.key
        self._expected = None if key is None else hashlib.sha256(key.encode()).digest()
        self.budget = AttemptBudget(
            store, prefix=BUDGET_PREFIX, limits=config.key_failures, what="admin-key",
            on_throttled=lambda: metrics.admin_refused("throttled"))
        listen_host = config.listen.rpartition(":")[0]
        self.hosts = HostAllowList.build(listen_host, config.allowed_hosts)

    def check_host(self, host: str | None) -> None:
        """421 unless the ``Host`` header names this listener."""
        if not self.hosts.allows(host):
            self.metrics.admin_refused("wrong_host")
            raise MisdirectedHost("this admin listener does not answer for that Host; "
                                  "list it in admin.allowed_hosts")

    async def check_key(self, authorization: str | None, address: str) -> None:
        """Return if the Authorization header holds the admin key; else 401 (429 past the budget)."""
        if self._expected is None or not authorization:
            # No key configured (the API is off), or none presented (a browser,
            # a probe): nothing is guessed, so nothing is counted.
            raise bad_admin_key()
        attempt = await self.budget.reserve(address)
        scheme, _, presented = authorization.partition(" ")
        # Digests of equal length: the comparison takes the same time whatever
        # was presented, its length included.
        digest = hashlib.sha256(presented.strip().encode()).digest()
        right = hmac.compare_digest(digest, self._expected)
        if right and scheme.lower() == "bearer":
            await self.budget.refund(attempt)
            return
        self.metrics.admin_refused("wrong_key")
        await self._audit(attempt)
        raise bad_admin_key()

    async def _audit(self, attempt: Attempt) -> None:
        # The first refusal of a source in an interval writes the event; the
        # rest of that interval are folded into it (the metric counts them all).
        interval = self.config.key_failures.window_seconds
        first = await self.store.hit_rate_limit(AUDIT_PREFIX + attempt.source, 1, interval)
        if not first.allowed:
            return
        await self.store.append_audit(AuditEvent(
            self.clock(), REFUSED_EVENT, REFUSED_ACTOR, "admin-api", NO_WORKSPACE,
            {"client": attempt.source, "attempts_in_window": attempt.attempts,
             "interval_seconds": interval}))
