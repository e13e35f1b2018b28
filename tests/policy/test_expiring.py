"""Counting tokens that expire soon, and the listing's expires_in_days."""

from __future__ import annotations

from gateway.policy.expiring import (
    counts_from_fields,
    counts_to_fields,
    expiring_counts,
    no_expiring,
)
from gateway.policy.model import DAY, TokenRecord, TokenType

NOW = 1_800_000_000.0


def test_horizons_are_cumulative_and_only_active_tokens_count() -> None:
    """Within 1 day counts within 7 and 30 too; revoked, expired and endless tokens never."""
    rows = [
        ("workspace", NOW + 0.5 * DAY, None),
        ("workspace", NOW + 6 * DAY, None),
        ("workspace", NOW + 7 * DAY, None),  # exactly a week: within 7 days
        ("workspace", NOW + 29 * DAY, None),
        ("workspace", NOW + 31 * DAY, None),
        ("workspace", NOW + 0.5 * DAY, NOW - 1),  # revoked
        ("workspace", NOW - 1, None),  # expired already
        ("personal", None, None),  # never expires
        ("member", NOW + 2 * DAY, None),
        ("trusted", NOW + 60, None),  # not a stored kind: ignored
    ]
    counts = expiring_counts(rows, NOW)
    assert counts[("workspace", "1d")] == 1
    assert counts[("workspace", "7d")] == 3
    assert counts[("workspace", "30d")] == 4
    assert counts[("member", "1d")] == 0
    assert counts[("member", "7d")] == counts[("member", "30d")] == 1
    assert counts[("personal", "30d")] == 0
    assert set(counts) == set(no_expiring())


def test_counts_survive_the_store_round_trip() -> None:
    """Flat string fields read back equal; missing or garbled fields are zero."""
    counts = expiring_counts([("member", NOW + DAY, None)], NOW)
    assert counts_from_fields(counts_to_fields(counts)) == counts
    assert counts_from_fields({"member:1d": "x"}) == no_expiring()


def record(expires_at: float | None, revoked_at: float | None = None) -> TokenRecord:
    return TokenRecord("tgw_x", TokenType.WORKSPACE, "n", "workspace:a", "a", "alice",
                       NOW - DAY, expires_at, "h", revoked_at=revoked_at)


def test_expires_in_days_counts_whole_days_left() -> None:
    """Rounded down, 0 once expired, none for a token that never expires or is revoked."""
    assert record(NOW + 6.9 * DAY).expires_in_days(NOW) == 6
    assert record(NOW + 7 * DAY).expires_in_days(NOW) == 7
    assert record(NOW + 0.2 * DAY).expires_in_days(NOW) == 0
    assert record(NOW - DAY).expires_in_days(NOW) == 0
    assert record(None).expires_in_days(NOW) is None
    assert record(NOW + DAY, revoked_at=NOW).expires_in_days(NOW) is None
    assert record(NOW + 6.9 * DAY).to_json(NOW)["expires_in_days"] == 6
