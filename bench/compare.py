"""The main scenario: A, B and C side by side, in turns, at 32 and 1 connections."""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import report
import sides
from load import one_header_script, run_wrk
from measure import Bench, basic, check_side, progress_line, timed_run
from procs import BenchError, tree_rss

SIDE_KEYS = {"bare": "A", "nginx": "B", "tokengate": "C"}
_MONITOR_LINE = re.compile(r'^\+?[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"')


def compare(bench: Bench) -> dict[str, Any]:
    """The main scenario: A, B and C in turns at 32 and 1 connections."""
    args = bench.args
    wanted = [SIDE_KEYS[s] for s in args.only]
    skipped: dict[str, str] = {}
    if "C" in wanted and (why := sides.tokengate_available()):
        if args.only_given:
            raise BenchError(f"tokengate cannot run: {why}")
        wanted.remove("C")
        skipped["C"] = why
        bench.say(f"bench: tokengate (C) skipped: {why}")

    if "C" in wanted:
        token, secret = bench.credentials()
    else:
        token, secret = "bench", secrets.token_urlsafe(24)
    authorization = basic(token, secret)
    script = one_header_script(bench.workdir / "auth.lua", authorization)

    started: list[sides.Side] = []
    for key in ("A", "B", "C"):
        if key not in wanted:
            continue
        if key == "A":
            started.append(sides.start_bare(bench.procs, bench.upstream_port))
        elif key == "B":
            started.append(sides.start_nginx(bench.procs, bench.workdir, bench.upstream_port,
                                             token, secret, args.nginx_hash))
        else:
            started.append(sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port))
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

    shares: dict[str, Any] = {}
    c_side = next((s for s in started if s.key == "C"), None)
    if c_side is not None:
        bench.say("bench: sampling tokengate's Redis traffic with MONITOR (not timed)")
        shares = monitor_sample(bench, c_side, script)

    result = summarize(bench, started, runs, shares, skipped)
    print(format_report(result))
    return result


# --- Redis: which commands are round trips, which run inside scripts ---------------------

def monitor_sample(bench: Bench, side: sides.Side, script: Path, seconds: int = 2
                   ) -> dict[str, Any]:
    """Count the commands Redis sees during a short untimed run, by who issued them.

    ``INFO commandstats`` counts the commands a Lua script calls as well as the
    ``EVALSHA`` that ran it, so it cannot tell round trips from work inside one.
    MONITOR can (script calls are tagged ``lua``), but it slows Redis down, so it
    only classifies: the timed runs never have a monitor attached.
    """
    counts: dict[str, dict[str, int]] = {}
    stop = threading.Event()
    ready = threading.Event()

    def reader() -> None:
        with socket.create_connection(("127.0.0.1", bench.redis_port), timeout=0.5) as conn:
            conn.sendall(b"MONITOR\r\n")
            buf = b""
            while not stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\r\n")
                for line in lines:
                    if line == b"+OK":
                        ready.set()
                        continue
                    m = _MONITOR_LINE.match(line.decode(errors="replace"))
                    if m:
                        who = "script" if m.group(1) == "lua" else "client"
                        per = counts.setdefault(m.group(2).lower(), {"client": 0, "script": 0})
                        per[who] += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    ready.wait(5)
    result = run_wrk(bench.wrk, side.url, script, connections=32, seconds=seconds)
    time.sleep(0.3)
    stop.set()
    thread.join(5)
    return {"requests": result.requests, "commands": counts}


def top_level_share(sample: dict[str, Any], command: str) -> float:
    """The fraction of ``command``'s calls that clients sent (1.0 when never sampled)."""
    per = sample.get("commands", {}).get(command)
    if not per or not (per["client"] + per["script"]):
        return 1.0
    return per["client"] / (per["client"] + per["script"])


# --- the comparison ----------------------------------------------------------------------

def summarize(bench: Bench, started: list[sides.Side],
                      runs: dict[str, dict[str, list[dict[str, Any]]]],
                      sample: dict[str, Any], skipped: dict[str, str]) -> dict[str, Any]:
    """Medians per side, Redis per request, RSS, and the target checks."""
    out: dict[str, Any] = {"scenario": "compare", "sides": {}, "skipped": skipped,
                           "monitor_sample": sample}
    for side in started:
        per_conn = runs[side.key]
        requests = sum(r["requests"] for rs in per_conn.values() for r in rs)
        redis: dict[str, int] = {}
        for rs in per_conn.values():
            for r in rs:
                for cmd, n in r["redis"].items():
                    redis[cmd] = redis.get(cmd, 0) + n
        per_req = {cmd: n / requests for cmd, n in redis.items()} if requests else {}
        top = sum(v * top_level_share(sample, cmd) for cmd, v in per_req.items())
        rss, parts = tree_rss(side.proc.pid)
        out["sides"][side.key] = {
            "label": side.label,
            "notes": side.notes,
            "summary": {c: report.summarize(rs) for c, rs in per_conn.items()},
            "helper_cores": {c: report.median([r["helper_cores"] for r in rs])
                             for c, rs in per_conn.items()},
            "side_cores": {c: report.median([r["side_cores"] for r in rs])
                           for c, rs in per_conn.items()},
            "redis_per_request": top,
            "redis_commands_per_request": {
                cmd: {"per_request": round(v, 4),
                      "issued_by": "script" if top_level_share(sample, cmd) < 0.5 else "client"}
                for cmd, v in per_req.items()},
            "rss_bytes": rss,
            "rss_parts": [{"pid": p, "comm": c, "rss_bytes": r} for p, c, r in parts],
            "runs": per_conn,
        }
    out["checks"] = checks(out["sides"], [str(c) for c in bench.args.conns])
    return out


def checks(s: dict[str, Any], conns: list[str]) -> list[dict[str, Any]]:
    """Ratios and differences against the targets of issue 8."""
    found: list[dict[str, Any]] = []
    errors = sum(v["summary"][c]["errors"] for v in s.values() for c in v["summary"])
    found.append({"name": "errors and non-2xx answers, all runs", "measured": str(errors),
                   "goal": "0", "ok": errors == 0})
    if "C" not in s:
        return found
    c = s["C"]["summary"]
    for base, goal in (("A", report.TARGET_THROUGHPUT_VS_BARE), ("B", None)):
        if base not in s:
            continue
        for conn in conns:
            ratio = c[conn]["rps"] / s[base]["summary"][conn]["rps"]
            primary = goal is not None and conn == conns[0]
            found.append({
                "name": f"throughput C/{base}, {conn} conn{'s' if conn != '1' else ''}",
                "measured": f"{ratio:.2f}",
                "goal": f">= {goal:.2f}" if primary else "(info)",
                "ok": ratio >= goal if primary and goal is not None else None})
    if "A" in s and "1" in c:
        diff = c["1"]["p50_ms"] - s["A"]["summary"]["1"]["p50_ms"]
        found.append({"name": "p50 latency C-A, 1 conn", "measured": f"{diff:+.3f} ms",
                       "goal": f"<= {report.TARGET_P50_ADDED_MS} ms",
                       "ok": diff <= report.TARGET_P50_ADDED_MS})
    red = s["C"]["redis_per_request"]
    found.append({"name": "Redis top-level commands per request (C)", "measured": f"{red:.3f}",
                   "goal": f"<= {report.TARGET_REDIS_PER_REQUEST:g}",
                   "ok": red <= report.TARGET_REDIS_PER_REQUEST})
    return found


def format_report(result: dict[str, Any]) -> str:
    """The printed report of the comparison."""
    s = result["sides"]
    conns = list(next(iter(s.values()))["summary"]) if s else []
    any_runs = next(iter(s.values()))["summary"][conns[0]]["rounds"] if s else 0
    lines = [f"comparison: median of {any_runs} rounds per cell; wrk -t1, latency from wrk "
             "--latency; RSS of the whole process tree after all runs", ""]
    lines.append(report.side_table(s, [int(c) for c in conns]))
    for key, why in result["skipped"].items():
        lines.append(f"{key} tokengate: not run ({why})")
    lines += ["", report.target_lines(result["checks"])]
    if "C" in s:
        lines += ["", "Redis commands per request during C's timed runs (INFO commandstats; "
                  "'script' = called inside a Lua script, not a round trip):"]
        for cmd, v in sorted(s["C"]["redis_commands_per_request"].items(),
                             key=lambda kv: -kv[1]["per_request"]):
            lines.append(f"  {cmd:<20} {v['per_request']:8.4f}  {v['issued_by']}")
        if not s["C"]["redis_commands_per_request"]:
            lines.append("  (none)")
    lines += ["", "CPU in cores while measured (median): process under test / wrk+upstream+Redis"]
    for key, v in s.items():
        cells = ", ".join(f"{c} conns {v['side_cores'][c]:.2f} / {v['helper_cores'][c]:.2f}"
                          for c in conns)
        lines.append(f"  {key} {v['label']:<18} {cells}")
        for c in conns:
            if v["helper_cores"][c] > 0.9 and v["side_cores"][c] < 0.9:
                lines.append(f"    note: at {c} conns the helpers' core was nearly full and "
                             f"{key} was not: {key}'s figure is a lower bound")
    return "\n".join(lines)
