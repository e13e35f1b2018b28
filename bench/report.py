"""Turning the raw runs into medians, target checks, a printed table and a JSON file."""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# The targets of issue 8, measured with one worker process per side.
TARGET_THROUGHPUT_VS_BARE = 0.90
TARGET_P50_ADDED_MS = 0.5
TARGET_REDIS_PER_REQUEST = 1.0
TARGET_RSS_MB = 100.0
TARGET_RSS_GROWTH_MB = 3.0  # "no growth", allowing for allocator noise
TARGET_WORKERS_SPEEDUP = 1.5
# The targets of issue 12 for D (nginx auth_request + tokengate's decision endpoint).
TARGET_AUTHZ_VS_BARE = 1.5
TARGET_AUTHZ_VS_SIDECAR = 2.5
TARGET_AUTHZ_P50_VS_NGINX_MS = 0.3

# Busy CPU on the machine beyond what a run accounts for (other users' work), in cores,
# above which the run is called noisy and left out of the medians when clean rounds exist.
NOISY_CORES = 0.25


def median(values: Sequence[float]) -> float:
    """The median, or 0 for no values."""
    return statistics.median(values) if values else 0.0


def clean(runs: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """The runs the machine's other work did not disturb; all of them if none is clean."""
    quiet = [r for r in runs if r.get("other_cores", 0.0) < NOISY_CORES]
    return quiet or runs


def summarize(all_runs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Median requests/s, p50 and p99 (ms) over the clean rounds, and the spread of requests/s."""
    runs = clean(all_runs)
    rps = [r["rps"] for r in runs]
    return {
        "rps": median(rps),
        "rps_min": min(rps, default=0.0),
        "rps_max": max(rps, default=0.0),
        "p50_ms": median([r["p50_us"] / 1000 for r in runs]),
        "p99_ms": median([r["p99_us"] / 1000 for r in runs]),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in all_runs),
        "rounds": len(runs),
        "noisy_rounds_left_out": len(all_runs) - len(runs),
        # No undisturbed run at all: the medians are over disturbed runs.
        "all_disturbed": bool(all_runs) and all(
            r.get("other_cores", 0.0) >= NOISY_CORES for r in all_runs),
    }


def check(name: str, measured: str, goal: str, ok: bool | None) -> dict[str, Any]:
    """One line of a target table; ``ok`` None for a figure shown for information."""
    return {"name": name, "measured": measured, "goal": goal, "ok": ok}


def mark(ok: bool | None) -> str:
    """PASS / MISS, or a dash when there is nothing to judge."""
    return "-" if ok is None else ("PASS" if ok else "MISS")


def _num(value: float, fmt: str) -> str:
    return "n/a" if math.isnan(value) else format(value, fmt)


def side_table(sides: Mapping[str, Mapping[str, Any]], conns: Sequence[int]) -> str:
    """The main table: one row per side."""
    head1 = f"{'':26}"
    head2 = f"{'side':26}"
    for c in conns:
        title = f"{c} connection{'s' if c != 1 else ''}"
        head1 += f" | {title:^27}"
        head2 += f" | {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    head1 += f" | {'redis':>7} | {'RSS':>7}"
    head2 += f" | {'cmd/req':>7} | {'MB':>7}"
    lines = [head1, head2, "-" * len(head2)]
    for key, side in sides.items():
        row = f"{key + ' ' + side['label']:26}"
        for c in conns:
            s = side["summary"].get(str(c))
            if s is None:
                row += f" | {'-':>9} {'-':>8} {'-':>8}"
            else:
                star = "*" if s.get("all_disturbed") else " "
                row += f" | {s['rps']:>8,.0f}{star} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}"
        row += f" | {_num(side['redis_per_request'], '7.2f'):>7}"
        row += f" | {side['rss_bytes'] / 2**20:>7.1f}"
        lines.append(row)
    if any(v.get("all_disturbed") for side in sides.values() for v in side["summary"].values()):
        lines.append("* no undisturbed run in this cell: its medians are over disturbed runs "
                     "(a lower bound)")
    return "\n".join(lines)


def target_lines(checks: Sequence[Mapping[str, Any]]) -> str:
    """The target table: what, measured, goal, verdict."""
    lines = [f"{'check':44} {'measured':>11}  {'goal':<12} verdict", "-" * 78]
    for c in checks:
        lines.append(f"{c['name']:44} {c['measured']:>11}  {c['goal']:<12} {mark(c['ok'])}")
    return "\n".join(lines)


def write_json(kind: str, data: Mapping[str, Any]) -> Path:
    """Write ``data`` to ``bench/results/<kind>-<timestamp>.json`` and ``<kind>-latest.json``."""
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{kind}-{stamp}.json"
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    path.write_text(text + "\n")
    (RESULTS / f"{kind}-latest.json").write_text(text + "\n")
    return path
