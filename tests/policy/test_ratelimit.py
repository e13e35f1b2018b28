"""The reference sliding-window decision and its headers, with time passed in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.policy.ratelimit import (
    RateDecision,
    decide,
    peek,
    rate_limit_headers,
    window_micros,
)

S = 1_000_000  # one second in microseconds
T0 = 1_800_000_000 * S
LIMIT = 40
WINDOW = 10 * S


def run(times: list[int], limit: int = LIMIT, window: int = WINDOW) -> list[RateDecision]:
    """Feed requests at the given times through one log; return each decision."""
    log: list[int] = []
    decisions = []
    for now in times:
        decision, log = decide(log, now, limit, window)
        decisions.append(decision)
    return decisions


def test_burst_admits_exactly_limit_and_remaining_counts_down() -> None:
    """45 requests at once: 40 pass with Remaining 39..0, 5 are rejected with Remaining 0."""
    decisions = run([T0] * 45)
    assert [d.allowed for d in decisions] == [True] * 40 + [False] * 5
    assert [d.remaining for d in decisions] == list(range(39, -1, -1)) + [0] * 5
    assert all(d.limit == LIMIT for d in decisions)
    assert [d.retry_after for d in decisions[:40]] == [0.0] * 40
    assert [d.retry_after for d in decisions[40:]] == [10.0] * 5


@pytest.mark.parametrize(
    ("spacing_us", "limit", "window_us"),
    [
        (1, 40, WINDOW),  # a burst within microseconds
        (S // 10, 40, WINDOW),  # 10 per second against 4 per second
        (250_000, 40, WINDOW),  # exactly the sustained rate
        (S // 3, 5, 2 * S),
        (7_777, 3, 50_000),
    ],
)
def test_never_more_than_limit_in_any_window(spacing_us: int, limit: int, window_us: int) -> None:
    """However fast a client sends, no window ever holds more than ``limit`` admissions."""
    times = [T0 + i * spacing_us for i in range(400)]
    admitted = [t for t, d in zip(times, run(times, limit, window_us)) if d.allowed]
    for i, start in enumerate(admitted):
        in_window = [t for t in admitted[i:] if t < start + window_us]
        assert len(in_window) <= limit


def test_rejected_requests_do_not_consume_quota() -> None:
    """A client hammering past the limit is admitted once its first request leaves the window."""
    times = [T0] + [T0 + 1 + i * 1000 for i in range(39)]  # fills the window
    hammering = [T0 + S * k // 10 for k in range(1, 100)]  # 10/s until the window ends
    decisions = run(times + hammering + [T0 + WINDOW])
    assert all(d.allowed for d in decisions[:40])
    assert not any(d.allowed for d in decisions[40:-1])
    assert decisions[-1].allowed, "the window reopened despite 100 rejected requests"


@pytest.mark.parametrize(
    ("elapsed_us", "allowed"),
    [
        (WINDOW - 1, False),  # one microsecond early
        (WINDOW, True),  # exactly one window later the old entry has left
        (WINDOW + 1, True),
    ],
)
def test_boundary_at_exactly_one_window(elapsed_us: int, allowed: bool) -> None:
    """An entry stops counting exactly ``window`` after its admission, not a microsecond earlier."""
    first, second = run([T0, T0 + elapsed_us], limit=1, window=WINDOW)
    assert first.allowed
    assert second.allowed is allowed


@pytest.mark.parametrize("rejected_at", [T0 + 40_000, T0 + 40_001, T0 + 123_456, T0 + WINDOW - 1])
def test_waiting_retry_after_gets_through_exactly(rejected_at: int) -> None:
    """Waiting exactly ``retry_after`` gets the next request through; a microsecond less does not."""
    log: list[int] = []
    for i in range(LIMIT):
        _, log = decide(log, T0 + i * 1000, LIMIT, WINDOW)
    rejected, log = decide(log, rejected_at, LIMIT, WINDOW)
    assert not rejected.allowed
    assert rejected.retry_after == rejected.reset == (T0 + WINDOW - rejected_at) / S
    then = rejected_at + round(rejected.retry_after * S)
    assert not decide(log, then - 1, LIMIT, WINDOW)[0].allowed
    assert decide(log, then, LIMIT, WINDOW)[0].allowed


def test_retry_after_waits_for_the_blocking_entry_when_limit_was_lowered() -> None:
    """If the limit dropped below the log size, retry_after waits until enough entries have left."""
    log = [T0, T0 + 1 * S, T0 + 2 * S, T0 + 3 * S]
    decision, kept = decide(log, T0 + 4 * S, 2, WINDOW)
    assert not decision.allowed
    assert decision.retry_after == 2 + 10 - 4  # the third entry (ts 2 s) must leave
    assert kept == log
    assert decide(log, T0 + 12 * S, 2, WINDOW)[0].allowed


@pytest.mark.parametrize(
    ("log", "now", "expected"),
    [
        ([], T0, RateDecision(True, 3, 3, 0.0, 0.0)),
        ([T0], T0 + S, RateDecision(True, 3, 2, 0.0, 1.0)),
        ([T0, T0 + 1, T0 + 2], T0 + S, RateDecision(False, 3, 0, 1.0, 1.0)),
        ([T0, T0 + 1, T0 + 2], T0 + 2 * S + 2, RateDecision(True, 3, 3, 0.0, 0.0)),
    ],
)
def test_peek_reports_without_recording(log: list[int], now: int, expected: RateDecision) -> None:
    """peek tells whether a request would pass and how much quota is left, without recording it."""
    window = 2 * S
    assert peek(log, now, 3, window) == expected
    assert peek(log, now, 3, window) == expected


@pytest.mark.parametrize(
    ("log", "now", "expected_log"),
    [
        ([], T0, [T0]),
        ([T0 - WINDOW, T0 - WINDOW + 1], T0, [T0 - WINDOW + 1, T0]),
        ([T0, T0], T0, [T0, T0, T0]),  # same microsecond: each one still counts
    ],
)
def test_decide_prunes_expired_entries_and_appends_now(
    log: list[int], now: int, expected_log: list[int]
) -> None:
    """An admitted request drops entries at or before now - window and appends now."""
    decision, new_log = decide(log, now, LIMIT, WINDOW)
    assert decision.allowed
    assert new_log == expected_log


@pytest.mark.parametrize(("limit", "window_us"), [(0, WINDOW), (-1, WINDOW), (1, 0)])
def test_nonsense_limits_are_refused(limit: int, window_us: int) -> None:
    """A limit below one or an empty window is a programming error, not a silent pass."""
    with pytest.raises(ValueError):
        decide([], T0, limit, window_us)


def test_window_micros_rounds_to_whole_microseconds() -> None:
    """Windows in seconds become integer microseconds, and zero is refused."""
    assert window_micros(10) == 10 * S
    assert window_micros(0.25) == 250_000
    assert window_micros(1.0000004) == S
    with pytest.raises(ValueError):
        window_micros(0)


@pytest.mark.parametrize(
    ("decision", "policy", "window", "expected"),
    [
        (
            RateDecision(True, 40, 39, 0.0, 10.0),
            "default",
            10,
            [
                ("X-RateLimit-Limit", "40"),
                ("X-RateLimit-Remaining", "39"),
                ("RateLimit-Policy", '"default";q=40;w=10'),
                ("RateLimit", '"default";r=39;t=10'),
            ],
        ),
        (
            RateDecision(False, 40, 0, 9.000001, 9.000001),
            "reports",
            10,
            [
                ("X-RateLimit-Limit", "40"),
                ("X-RateLimit-Remaining", "0"),
                ("RateLimit-Policy", '"reports";q=40;w=10'),
                ("RateLimit", '"reports";r=0;t=10'),
                ("Retry-After", "10"),
            ],
        ),
        (
            RateDecision(False, 5, 0, 0.000001, 0.000001),
            "auth-failures",
            60,
            [
                ("X-RateLimit-Limit", "5"),
                ("X-RateLimit-Remaining", "0"),
                ("RateLimit-Policy", '"auth-failures";q=5;w=60'),
                ("RateLimit", '"auth-failures";r=0;t=1'),
                ("Retry-After", "1"),  # never 0: rounded up, at least one second
            ],
        ),
        (
            RateDecision(True, 3, 3, 0.0, 0.0),
            'odd "name"\\é',
            0.5,
            [
                ("X-RateLimit-Limit", "3"),
                ("X-RateLimit-Remaining", "3"),
                ("RateLimit-Policy", '"odd \\"name\\"\\\\_";q=3;w=1'),
                ("RateLimit", '"odd \\"name\\"\\\\_";r=3;t=0'),
            ],
        ),
    ],
)
def test_headers(
    decision: RateDecision, policy: str, window: float, expected: list[tuple[str, str]]
) -> None:
    """Headers carry X-RateLimit-*, the IETF draft fields, and Retry-After (>= 1 s) only on 429."""
    assert rate_limit_headers(decision, policy=policy, window_seconds=window) == expected


def test_policy_module_imports_neither_aiohttp_nor_redis() -> None:
    """The pure decision loads without aiohttp or redis, so it stays free of I/O."""
    code = (
        "import sys, gateway.policy.ratelimit; "
        "print(sorted(m for m in ('aiohttp', 'redis') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
