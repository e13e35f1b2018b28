"""How many active tokens expire soon, per token type and horizon.

The ``tokengate_tokens_expiring`` gauge publishes these counts. Horizons are
cumulative (a token expiring tomorrow is within 1, 7 and 30 days) and there
is no workspace label: the alert says "some workspace token expires within
a week", the admin API's listing (``expires_in_days``) says which.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.policy.model import DAY, TokenType

HORIZONS: dict[str, float] = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
COUNTED_TYPES: tuple[str, ...] = (TokenType.WORKSPACE.value, TokenType.MEMBER.value,
                                  TokenType.PERSONAL.value)
ExpiringCounts = dict[tuple[str, str], int]
"""(token type, horizon) -> active tokens of that type expiring within it."""


def no_expiring() -> ExpiringCounts:
    """Every count at zero."""
    return {(t, h): 0 for t in COUNTED_TYPES for h in HORIZONS}


def expiring_counts(
    tokens: Iterable[tuple[str, float | None, float | None]], now: float
) -> ExpiringCounts:
    """Count ``(type, expires_at, revoked_at)`` rows: active ones that expire within each horizon."""
    counts = no_expiring()
    for token_type, expires_at, revoked_at in tokens:
        if revoked_at is not None or expires_at is None or expires_at <= now:
            continue
        left = expires_at - now
        for horizon, seconds in HORIZONS.items():
            key = (token_type, horizon)
            if left <= seconds and key in counts:
                counts[key] += 1
    return counts


def counts_to_fields(counts: ExpiringCounts) -> dict[str, str]:
    """The counts as flat string fields (``workspace:7d``), as a store keeps them."""
    return {f"{t}:{h}": str(n) for (t, h), n in counts.items()}


def counts_from_fields(fields: dict[str, str]) -> ExpiringCounts:
    """Counts read back from :func:`counts_to_fields`; what is missing or garbled is 0."""
    counts = no_expiring()
    for key in counts:
        value = fields.get(f"{key[0]}:{key[1]}", "")
        counts[key] = int(value) if value.isdigit() else 0
    return counts
