"""Rolling a secret: a new one for the same token, the old one kept for a grace period.

Clients move to the new secret at their own pace; once the grace period
ends the old one is refused like any wrong secret. A record keeps at most
two secrets, both as keyed hashes: rolling again during a grace period
ends the older one at once (the secret replaced now gets the new grace).
"""

from __future__ import annotations

import enum
import hmac
import math

from gateway.policy.errors import Unprocessable
from gateway.policy.model import TokenRecord

DEFAULT_GRACE_SECONDS = 86400
MAX_GRACE_SECONDS = 7 * 86400


class SecretMatch(enum.Enum):
    """Which of a record's secrets a presented one is."""

    CURRENT = "current"
    PREVIOUS = "previous"  # the rolled-away secret, inside its grace period


def grace_seconds(value: object) -> int:
    """The grace period asked for (None: the default); 422 unless 0 to 7 days in whole seconds."""
    if value is None:
        return DEFAULT_GRACE_SECONDS
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_GRACE_SECONDS:
        raise Unprocessable(f"grace_seconds: must be a whole number of seconds from 0 "
                            f"(the old secret stops now) to {MAX_GRACE_SECONDS} (7 days)")
    return value


def secret_match(record: TokenRecord, presented_hash: str, now: float) -> SecretMatch | None:
    """Which secret the keyed hash of a presented one matches at ``now``, or None.

    Both comparisons are constant-time; the previous secret counts only
    strictly before the end of its grace period.
    """
    current = hmac.compare_digest(presented_hash, record.secret_hash)
    previous = bool(record.previous_secret_hash) and hmac.compare_digest(
        presented_hash, record.previous_secret_hash)
    if current:
        return SecretMatch.CURRENT
    until = record.previous_secret_until
    if previous and until is not None and now < until:
        return SecretMatch.PREVIOUS
    return None


def trusted_until(record: TokenRecord, match: SecretMatch | None) -> float:
    """Until when a verified secret may be taken on trust without checking it again."""
    if match is SecretMatch.PREVIOUS and record.previous_secret_until is not None:
        return record.previous_secret_until
    return math.inf
