"""The main scenario: A, B, C and D side by side, in turns, at 32 and 1 connections."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import authz_side
import redis_usage
import report
import sides
from load import one_header_script
from measure import Bench, basic, check_side, progress_line, timed_run
from procs import BenchError, tree_rss

SIDE_KEYS = {"bare": "A", "nginx": "B", "tokengate": "C", "authz": "D",
             "tokengate-aiohttp": "E"}
# The sides that talk to Redis: their traffic is sampled with MONITOR and checked.
TOKENGATE_SIDES = ("C", "D", "E")


def _unavailable(key: str) -> str | None:
    why = sides.tokengate_available()
    if key == "D":
        why = why or authz_side.available()
    return why if key in TOKENGATE_SIDES else None


def compare(bench: Bench) -> dict[str, Any]:
    """The main scenario: A, B, C and D in turns at 32 and 1 connections."""
    args = bench.args
    wanted = [SIDE_KEYS[s] for s in args.only]
    skipped: dict[str, str] = {}
    for key in list(wanted):
        if why := _unavailable(key):
            if args.only_given:
                raise BenchError(f"side {key} cannot run: {why}")
            wanted.remove(key)
            skipped[key] = why
            bench.say(f"bench: side {key} skipped: {why}")

    if any(k in wanted for k in TOKENGATE_SIDES):
        token, secret = bench.credentials()
    else:
        token, secret = "bench", secrets.token_urlsafe(24)
    authorization = basic(token, secret)
    script = one_header_script(bench.workdir / "auth.lua", authorization)

    started: list[sides.Side] = []
    try:
        for key in ("A", "B", "C", "E", "D"):
            if key not in wanted:
                continue
            if key == "A":
                started.append(sides.start_bare(bench.procs, bench.upstream_port))
            elif key == "B":
                started.append(sides.start_nginx(bench.procs, bench.workdir, bench.upstream_port,
                                                 token, secret, args.nginx_hash))
            elif key == "C":
                started.append(sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port,
                                                     client=args.client))
            elif key == "E":
                # C with aiohttp's upstream client, side by side with the lean one.
                started.append(sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port,
                                                     name="tokengate-aiohttp", client="aiohttp",
                                                     key="E"))
            else:
                started.append(authz_side.start(bench.procs, bench.workdir, bench.tg,
                                                bench.upstream_port))
        result = _measure(bench, started, script, authorization, skipped)
    finally:
        for side in started:
            for proc in (side.proc, *side.companions):
                bench.procs.stop(proc)
    print(format_report(result))
    return result


def _measure(bench: Bench, started: list[sides.Side], script: Path, authorization: str,
             skipped: dict[str, str]) -> dict[str, Any]:
    """Check each side, drive them in turns, sample C's and D's Redis traffic, summarize."""
    args = bench.args
    for side in started:
        check_side(side, authorization, checks_auth=side.key != "A")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s.key: {} for s in started}
    bench.say(f"bench: {args.rounds} rounds x {len(args.conns)} connection counts x "
              f"{len(started)} sides, {args.duration}s each after a {args.warmup}s warm-up")
    for rnd in range(args.rounds):
        for conns in args.conns:
            for side in started:
                run = timed_run(bench, side, script, conns, args.duration, args.warmup)
                runs[side.key].setdefault(str(conns), []).append(run)
                bench.say(progress_line(rnd, args.rounds, side, run))

    samples: dict[str, dict[str, Any]] = {}
    for side in started:
        if side.key in TOKENGATE_SIDES:
            bench.say(f"bench: sampling {side.key}'s Redis traffic with MONITOR (not timed)")
            samples[side.key] = redis_usage.monitor_sample(bench, side, script)
    # RSS is read inside summarize, while the sides still run.
    return summarize(bench, started, runs, samples, skipped)


# --- the comparison ----------------------------------------------------------------------

def summarize(bench: Bench, started: list[sides.Side],
              runs: dict[str, dict[str, list[dict[str, Any]]]],
              samples: dict[str, dict[str, Any]], skipped: dict[str, str]) -> dict[str, Any]:
    """Medians per side, Redis per request, RSS, and the target checks."""
    out: dict[str, Any] = {"scenario": "compare", "sides": {}, "skipped": skipped,
                           "monitor_sample": samples.get("C", {}), "monitor_samples": samples}
    # A side without a sample of its own (A, B: none of their traffic is theirs) is
    # classified with everything the samples saw.
    merged = redis_usage.merge_samples(samples.values())
    for side in started:
        sample = samples.get(side.key, merged)
        per_conn = runs[side.key]
        # Per *forwarded* request (counted at the upstream), so the requests wrk cut
        # off at the end of a run do not inflate it.
        all_runs = [r for rs in per_conn.values() for r in rs]
        sent, unclassified, breakdown = redis_usage.per_request(
            (r["redis"] for r in all_runs), sum(r["forwarded"] for r in all_runs), sample)
        trees = [tree_rss(pid) for pid in side.pids]
        rss, parts = sum(t[0] for t in trees), [p for t in trees for p in t[1]]
        out["sides"][side.key] = {
            "label": side.label,
            "notes": side.notes,
            "summary": {c: report.summarize(rs) for c, rs in per_conn.items()},
            "helper_cores": {c: report.median([r["helper_cores"] for r in report.clean(rs)])
                             for c, rs in per_conn.items()},
            "side_cores": {c: report.median([r["side_cores"] for r in report.clean(rs)])
                           for c, rs in per_conn.items()},
            # Counted as sent: the commands sent, plus those the sample could not classify.
            "redis_per_request": sent + unclassified,
            "redis_sent_per_request": sent,
            "redis_unclassified_per_request": unclassified,
            "redis_commands_per_request": breakdown,
            "rss_bytes": rss,
            "rss_parts": [{"pid": p, "comm": c, "rss_bytes": r} for p, c, r in parts],
            "runs": per_conn,
        }
    out["checks"] = checks(out["sides"], [str(c) for c in bench.args.conns])
    return out


def paired(s: dict[str, Any], x: str, y: str, conn: str,
           measure: Callable[[dict[str, Any], dict[str, Any]], float]) -> tuple[float, int]:
    """The median over rounds of ``measure(x's run, y's run)`` for runs of the same round.

    Runs of one round are seconds apart, so a per-round ratio cancels slow drift of
    the machine. Rounds where either run was disturbed by other work are left out
    when any round is undisturbed. Returns the median and how many rounds it used.
    """
    pairs = list(zip(s[x]["runs"][conn], s[y]["runs"][conn], strict=True))
    quiet = [(p, q) for p, q in pairs
             if max(p.get("other_cores", 0.0), q.get("other_cores", 0.0)) < report.NOISY_CORES]
    use = quiet or pairs
    return report.median([measure(p, q) for p, q in use]), len(use)


def _ratio_checks(s: dict[str, Any], x: str, conns: list[str], goals: dict[str, float],
                  bases: tuple[str, ...] = ("A", "B", "C")) -> list[dict[str, Any]]:
    """Throughput of ``x`` over each other side, per connection count, paired by round.

    ``goals`` maps a base side to the ratio ``x`` must reach at the first connection
    count; every other ratio is shown for information.
    """
    found = []
    for base in bases:
        if base == x or base not in s:
            continue
        for conn in conns:
            ratio, n = paired(s, x, base, conn, lambda p, q: p["rps"] / q["rps"])
            name = f"throughput {x}/{base}, {conn} conn{'s' if conn != '1' else ''} ({n} rounds)"
            goal = goals.get(base) if conn == conns[0] else None
            if goal is None:
                found.append(report.check(name, f"{ratio:.2f}", "(info)", None))
            else:
                found.append(report.check(name, f"{ratio:.2f}", f">= {goal:.2f}", ratio >= goal))
    return found


def _p50_check(s: dict[str, Any], x: str, base: str, goal_ms: float) -> dict[str, Any]:
    diff, n = paired(s, x, base, "1", lambda p, q: (p["p50_us"] - q["p50_us"]) / 1000)
    return report.check(f"p50 latency {x}-{base}, 1 conn ({n} rounds)", f"{diff:+.3f} ms",
                        f"<= {goal_ms} ms", diff <= goal_ms)


def _redis_check(s: dict[str, Any], x: str) -> dict[str, Any]:
    red = s[x]["redis_per_request"]
    # Judged at two decimals: connection upkeep (a PING after idle, HELLO on a new
    # connection) amortizes to ~0.001 per request and is not work done per request.
    return report.check(f"Redis commands sent per request ({x})", f"{red:.3f}",
                        f"<= {report.TARGET_REDIS_PER_REQUEST:g}",
                        round(red, 2) <= report.TARGET_REDIS_PER_REQUEST)


def checks(s: dict[str, Any], conns: list[str]) -> list[dict[str, Any]]:
    """Ratios and differences against the targets of issues 8 (C) and 12 (D), paired by round."""
    errors = sum(v["summary"][c]["errors"] for v in s.values() for c in v["summary"])
    found = [report.check("errors and non-2xx answers, all runs", str(errors), "0", errors == 0)]
    for side in ("C", "E"):  # tokengate as the proxy: lean client, aiohttp's
        if side not in s:
            continue
        found += _ratio_checks(s, side, conns, {"A": report.TARGET_THROUGHPUT_VS_BARE},
                               bases=("A", "B", "E") if side == "C" else ("A", "B"))
        if "A" in s and "1" in conns:
            found.append(_p50_check(s, side, "A", report.TARGET_P50_ADDED_MS))
        found.append(_redis_check(s, side))
    if "D" in s:
        found += _ratio_checks(s, "D", conns, {"A": report.TARGET_AUTHZ_VS_BARE,
                                               "C": report.TARGET_AUTHZ_VS_SIDECAR})
        if "B" in s and "1" in conns:
            found.append(_p50_check(s, "D", "B", report.TARGET_AUTHZ_P50_VS_NGINX_MS))
        found.append(_redis_check(s, "D"))
    return found


def format_report(result: dict[str, Any]) -> str:
    """The printed report of the comparison."""
    s = result["sides"]
    conns = list(next(iter(s.values()))["summary"]) if s else []
    noisy = sum(v["summary"][c]["noisy_rounds_left_out"] for v in s.values() for c in conns)
    lines = [("comparison: median over rounds per cell; wrk -t1, latency from wrk --latency; "
              "RSS of the whole process tree after all runs")]
    if noisy:
        lines.append(f"note: {noisy} run(s) left out of the medians: the machine was busy with "
                     f"other work (>= {report.NOISY_CORES} cores); see 'other_cores' in the JSON")
    lines.append("")
    lines.append(report.side_table(s, [int(c) for c in conns]))
    for key, why in result["skipped"].items():
        lines.append(f"{key}: not run ({why})")
    lines += ["", report.target_lines(result["checks"])]
    for key in TOKENGATE_SIDES:
        if key not in s:
            continue
        lines += ["", (f"Redis commands per request during {key}'s timed runs (INFO "
                       "commandstats; 'script' = called inside a Lua script, not sent; "
                       "'unclassified' = not seen in the MONITOR sample, counted as sent):")]
        for cmd, v in sorted(s[key]["redis_commands_per_request"].items(),
                             key=lambda kv: -kv[1]["per_request"]):
            rate = f"{v['per_request']:8.4f}" if v["per_request"] >= 0.0001 else f"{'<0.0001':>8}"
            lines.append(f"  {cmd:<20} {rate}  {v['issued_by']}")
        if not s[key]["redis_commands_per_request"]:
            lines.append("  (none)")
    lines += ["", "CPU in cores while measured (median): process under test / wrk+upstream+Redis"]
    for key, v in s.items():
        cells = ", ".join(f"{c} conns {v['side_cores'][c]:.2f} / {v['helper_cores'][c]:.2f}"
                          for c in conns)
        lines.append(f"  {key} {v['label']:<23} {cells}")
        for c in conns:
            if v["helper_cores"][c] > 0.9 and v["side_cores"][c] < 0.9:
                lines.append(f"    note: at {c} conns the helpers' core was nearly full and "
                             f"{key} was not: {key}'s figure is a lower bound")
    return "\n".join(lines)
