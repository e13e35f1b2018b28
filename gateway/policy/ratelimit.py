"""The sliding-window-log rate-limit decision and the headers that publish it.

This is the reference: ``gateway/store/lua/ratelimit.lua`` runs the same
decision inside Redis, the memory store calls :func:`decide` directly, and
``tests/store/test_ratelimit_agreement.py`` proves all three agree.

Timestamps are integer microseconds. Lua numbers are doubles, which hold
every integer below 2**53 exactly (epoch microseconds are about 2**51), so
Python ints and Redis scores compare identically and no float rounding can
make the two implementations disagree.

The rule, for a key with at most ``limit`` requests per ``window_us``:

* an entry with ``ts <= now_us - window_us`` has left the window;
* if fewer than ``limit`` entries remain, the request is admitted and
  ``now_us`` is appended;
* otherwise it is rejected and nothing is recorded, so a client that keeps
  hammering is admitted again as soon as the window has room.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """A named limit: at most ``limit`` requests in any ``window_seconds``."""

    name: str
    limit: int
    window_seconds: float


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one rate-limit check.

    ``remaining`` is how many more requests would be admitted right now.
    ``reset`` is the number of seconds until ``remaining`` next grows (the
    entry that blocks the next admission leaves the window), and
    ``retry_after`` equals it when the request was rejected, else 0.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """A decision that recorded an admission, and when (for a later refund).

    ``at_us`` is the admission's timestamp, or None if the request was rejected
    and nothing was recorded.
    """

    decision: RateDecision
    at_us: int | None


def window_micros(window_seconds: float) -> int:
    """The window as whole microseconds; it must be at least one."""
    window_us = round(window_seconds * MICROS)
    if window_us < 1:
        raise ValueError(f"rate-limit window must be positive, got {window_seconds!r}")
    return window_us


def to_micros(epoch_seconds: float) -> int:
    """A wall-clock reading in epoch seconds as integer microseconds."""
    return round(epoch_seconds * MICROS)


def decision_from(*, allowed: bool, limit: int, count: int, reset_us: int) -> RateDecision:
    """Build a decision from the window's entry count after the request.

    Shared by :func:`decide` and the Redis store so that both turn the same
    three numbers into the same value.
    """
    reset = reset_us / MICROS
    return RateDecision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, limit - count),
        retry_after=0.0 if allowed else reset,
        reset=reset,
    )


def decide(
    log: Sequence[int], now_us: int, limit: int, window_us: int
) -> tuple[RateDecision, list[int]]:
    """Record a request at ``now_us`` if the window has room; return the decision and new log.

    ``log`` holds the admitted timestamps in ascending order.
    """
    kept = _live(log, now_us, limit, window_us)
    allowed = len(kept) < limit
    if allowed:
        kept.append(now_us)
    return _decision(kept, allowed, now_us, limit, window_us), kept


def decide_both(
    first: Sequence[int], second: Sequence[int], now_us: int,
    limits: tuple[int, int], windows_us: tuple[int, int],
) -> tuple[RateDecision, RateDecision, list[int], list[int]]:
    """Admit a request into two windows at once, or into neither (``lua/ratelimit_both.lua``).

    The user's window and a token's own: a request one of them refuses is
    recorded in neither, so a refused request uses up no quota anywhere.
    Each decision says what its own window alone would do; the request was
    admitted if both allow it.
    """
    kept_a = _live(first, now_us, limits[0], windows_us[0])
    kept_b = _live(second, now_us, limits[1], windows_us[1])
    allowed_a, allowed_b = len(kept_a) < limits[0], len(kept_b) < limits[1]
    if allowed_a and allowed_b:
        kept_a.append(now_us)
        kept_b.append(now_us)
    return (_decision(kept_a, allowed_a, now_us, limits[0], windows_us[0]),
            _decision(kept_b, allowed_b, now_us, limits[1], windows_us[1]), kept_a, kept_b)


def closer_to_exhaustion(a: RateDecision, b: RateDecision) -> RateDecision:
    """Which of two windows' decisions the response should publish.

    A refusing window wins (of two, the one to wait longer for, so its
    ``Retry-After`` suffices for both); else the one with fewer requests
    left (on a tie, the one that frees up later).
    """
    if not a.allowed or not b.allowed:
        if a.allowed:
            return b
        if b.allowed:
            return a
        return a if a.retry_after >= b.retry_after else b
    return a if (a.remaining, -a.reset) <= (b.remaining, -b.reset) else b


def peek(log: Sequence[int], now_us: int, limit: int, window_us: int) -> RateDecision:
    """Whether a request at ``now_us`` would be admitted, recording nothing."""
    kept = _live(log, now_us, limit, window_us)
    return _decision(kept, len(kept) < limit, now_us, limit, window_us)


def refund(
    log: Sequence[int], now_us: int, at_us: int, limit: int, window_us: int
) -> tuple[RateDecision, list[int]]:
    """Take back one admission recorded at ``at_us``; the decision a peek would now give.

    A refunded attempt counts as if it had never been made. If the entry has
    already left the window there is nothing to take back.
    """
    kept = _live(log, now_us, limit, window_us)
    if at_us in kept:
        kept.remove(at_us)  # entries sharing a timestamp are interchangeable
    return _decision(kept, len(kept) < limit, now_us, limit, window_us), kept


def _live(log: Sequence[int], now_us: int, limit: int, window_us: int) -> list[int]:
    if limit < 1:
        raise ValueError(f"rate limit must be at least 1, got {limit!r}")
    if window_us < 1:
        raise ValueError(f"rate-limit window must be positive, got {window_us!r} us")
    cutoff = now_us - window_us
    return [ts for ts in log if ts > cutoff]


def _decision(
    kept: list[int], allowed: bool, now_us: int, limit: int, window_us: int
) -> RateDecision:
    # The next admission needs fewer than ``limit`` entries, so the entry
    # that must leave first is kept[len - limit] (kept[0] while under the
    # limit). The log can exceed ``limit`` only if the limit was lowered.
    if kept:
        blocker = kept[max(0, len(kept) - limit)]
        reset_us = blocker + window_us - now_us
    else:
        reset_us = 0
    return decision_from(allowed=allowed, limit=limit, count=len(kept), reset_us=reset_us)


def rate_limit_headers(
    decision: RateDecision, *, policy: str, window_seconds: float
) -> list[tuple[str, str]]:
    """The response headers that publish a decision.

    ``X-RateLimit-*`` for the clients of the API being fronted, and the
    ``RateLimit-Policy`` / ``RateLimit`` fields of
    draft-ietf-httpapi-ratelimit-headers (Structured Field lists whose item
    is the quoted policy name): ``q`` quota, ``w`` window, ``r`` remaining,
    ``t`` seconds until quota frees up. ``Retry-After`` only on rejection,
    in whole seconds rounded up (never 0), so waiting that long suffices.
    """
    name = _sf_string(policy)
    headers = [
        ("X-RateLimit-Limit", str(decision.limit)),
        ("X-RateLimit-Remaining", str(decision.remaining)),
        ("RateLimit-Policy", f"{name};q={decision.limit};w={max(1, math.ceil(window_seconds))}"),
        ("RateLimit", f"{name};r={decision.remaining};t={math.ceil(decision.reset)}"),
    ]
    if not decision.allowed:
        headers.append(("Retry-After", str(max(1, math.ceil(decision.retry_after)))))
    return headers


@functools.lru_cache(maxsize=256)  # policy names are a handful of configured classes
def _sf_string(value: str) -> str:
    """``value`` as an RFC 8941 sf-string; characters it cannot carry become ``_``."""
    printable = "".join(c if " " <= c <= "~" else "_" for c in value)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def window_key(name: str, subject: str) -> str:
    """The store key of one of ``subject``'s windows (a route class's, or ``token:<id>``).

    The subject is the key's hash tag: every window of one subject shares a
    Redis Cluster slot, so a request judged against two of them (the user's and
    a token's own limit) is one atomic script.
    """
    return f"{name}:{{{subject}}}"
