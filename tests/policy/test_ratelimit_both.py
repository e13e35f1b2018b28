"""Two windows at once (the user's and a token's own), decided purely."""

from __future__ import annotations

import pytest

from gateway.policy.ratelimit import RateDecision, closer_to_exhaustion, decide_both

S = 1_000_000  # one second in microseconds
T0 = 1_800_000_000 * S


def run(times: list[int], limits: tuple[int, int], windows: tuple[int, int]
        ) -> list[tuple[bool, RateDecision, RateDecision]]:
    """Feed requests at ``times``; per request (admitted, first's decision, second's)."""
    first: list[int] = []
    second: list[int] = []
    out = []
    for t in times:
        a, b, first, second = decide_both(first, second, t, limits, windows)
        out.append((a.allowed and b.allowed, a, b))
    return out


def test_the_stricter_window_refuses_and_neither_records_the_refusal() -> None:
    """With the token's own 2 per 10 s under the user's 5, the third request is refused
    and the user's window does not count it."""
    results = run([T0, T0 + 1, T0 + 2, T0 + 3], (5, 2), (10 * S, 10 * S))
    assert [admitted for admitted, _, _ in results] == [True, True, False, False]
    _, user, own = results[2]
    assert (user.allowed, user.remaining) == (True, 3)  # two recorded, not three
    assert (own.allowed, own.remaining) == (False, 0)
    assert own.retry_after == pytest.approx(10 - 2e-6)


def test_a_refusal_frees_up_as_the_refusing_window_does() -> None:
    """Once the token's own window moves on, requests are admitted again into both."""
    results = run([T0, T0 + S, T0 + 10 * S + 1], (40, 1), (60 * S, 10 * S))
    assert [admitted for admitted, _, _ in results] == [True, False, True]
    assert results[2][1].remaining == 38  # the user's window holds two admissions


def test_either_window_may_be_the_stricter() -> None:
    """The user's window refuses too, and then the token's records nothing either."""
    results = run([T0, T0 + 1, T0 + 2], (2, 100), (60 * S, S))
    assert [admitted for admitted, _, _ in results] == [True, True, False]
    assert results[2][2].remaining == 98


def d(allowed: bool, limit: int, remaining: int, reset: float) -> RateDecision:
    return RateDecision(allowed, limit, remaining, 0.0 if allowed else reset, reset)


@pytest.mark.parametrize(("a", "b", "chosen"), [
    (d(True, 40, 39, 10), d(True, 3, 2, 60), "b"),  # fewer left
    (d(True, 40, 1, 10), d(True, 3, 2, 60), "a"),
    (d(True, 40, 2, 10), d(True, 3, 2, 60), "b"),  # a tie: the one that frees up later
    (d(False, 40, 0, 5), d(True, 3, 0, 60), "a"),  # a refusing window wins
    (d(True, 40, 0, 5), d(False, 3, 0, 60), "b"),
    (d(False, 40, 0, 5), d(False, 3, 0, 60), "b"),  # both refuse: the longer wait
    (d(False, 40, 0, 70), d(False, 3, 0, 60), "a"),
])
def test_the_headers_publish_the_window_closer_to_exhaustion(
        a: RateDecision, b: RateDecision, chosen: str) -> None:
    """A refusing window first (the longer Retry-After), else the fewest requests left."""
    assert closer_to_exhaustion(a, b) is (a if chosen == "a" else b)
