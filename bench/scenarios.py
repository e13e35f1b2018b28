"""The tokengate-only scenarios: memory over many tokens, and --workers 2 against 1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import report
import sides
from load import cycling_script, one_header_script, run_wrk_until_stop
from measure import Bench, basic, check_side, progress_line, timed_run
from procs import BenchError, RedisStats, commandstats_delta, tree_rss

MB = 2**20


# --- memory: many distinct tokens --------------------------------------------------------

async def _create_tokens(admin_port: int, admin_key: str, count: int) -> list[tuple[str, str]]:
    import aiohttp

    url = f"http://127.0.0.1:{admin_port}/admin/api/tokens"
    headers = {"Authorization": f"Bearer {admin_key}"}
    made: list[tuple[str, str]] = []
    todo = iter(range(count))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in todo:
            async with session.post(url, json={"type": "workspace", "name": f"mem-{i}"}) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 201:
                    raise BenchError(f"POST /admin/api/tokens answered {resp.status}: {body}")
                made.append((body["token"], body["secret"]))

    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(worker(session) for _ in range(8)))
    return made


def memory(bench: Bench) -> dict[str, Any]:
    """RSS of tokengate after N requests over M distinct tokens, and after N more."""
    args = bench.args
    if why := sides.tokengate_available():
        raise BenchError(f"the memory scenario needs tokengate: {why}")
    side = sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port, name="tokengate-mem")
    n, m = args.memory_requests, args.memory_tokens
    bench.say(f"bench: creating {m:,} workspace tokens through the admin API")
    t0 = time.monotonic()
    tokens = asyncio.run(_create_tokens(int(side.notes["admin_port"]), bench.tg.admin_key, m))
    bench.say(f"bench: created in {time.monotonic() - t0:.1f}s")
    check_side(side, basic(*tokens[0]), checks_auth=True)
    header_file = bench.workdir / "memory-headers.txt"
    header_file.write_text("".join(basic(t, s) + "\n" for t, s in tokens))
    script = cycling_script(bench.workdir / "memory.lua", header_file, n)
    rss0, _ = tree_rss(side.proc.pid)
    stats = RedisStats(bench.redis_port)
    passes = []
    for i in (1, 2):
        before = stats.commandstats()
        res = run_wrk_until_stop(bench.wrk, side.url, script, connections=32, max_seconds=900)
        redis = commandstats_delta(before, stats.commandstats())
        rss, _ = tree_rss(side.proc.pid)
        passes.append({**res.as_dict(), "errors": res.errors, "rss_bytes": rss, "redis": redis})
        bench.say(f"  pass {i}: {res.requests:,} requests, {res.rps:,.0f} req/s, "
                  f"{res.errors} errors, RSS {rss / MB:.1f} MB")
    growth = (passes[1]["rss_bytes"] - passes[0]["rss_bytes"]) / MB
    checks = [
        {"name": "errors and non-2xx answers", "measured": str(sum(p["errors"] for p in passes)),
         "goal": "0", "ok": all(p["errors"] == 0 for p in passes)},
        {"name": f"RSS after first {n:,} requests", "measured": f"{passes[0]['rss_bytes'] / MB:.1f} MB",
         "goal": f"<= {report.TARGET_RSS_MB:g} MB",
         "ok": passes[0]["rss_bytes"] / MB <= report.TARGET_RSS_MB},
        {"name": f"RSS after second {n:,} requests",
         "measured": f"{passes[1]['rss_bytes'] / MB:.1f} MB",
         "goal": f"<= {report.TARGET_RSS_MB:g} MB",
         "ok": passes[1]["rss_bytes"] / MB <= report.TARGET_RSS_MB},
        {"name": "RSS growth over the second pass", "measured": f"{growth:+.1f} MB",
         "goal": f"<= {report.TARGET_RSS_GROWTH_MB:g} MB", "ok": growth <= report.TARGET_RSS_GROWTH_MB},
    ]
    lines = [f"memory: tokengate, 1 worker, {m:,} distinct tokens cycled by wrk at 32 conns; "
             f"RSS {rss0 / MB:.1f} MB before the first request"]
    for i, p in enumerate(passes, 1):
        per_req = {k: round(v / p["requests"], 3) for k, v in p["redis"].items()}
        lines.append(f"  pass {i}: {p['requests']:,} requests at {p['rps']:,.0f} req/s, "
                     f"RSS {p['rss_bytes'] / MB:.1f} MB; Redis commands/request {per_req}")
    lines += ["", report.target_lines(checks)]
    print("\n".join(lines))
    return {"scenario": "memory", "tokens": m, "requests_per_pass": n, "rss_start": rss0,
            "passes": passes, "checks": checks}


# --- workers: one port, two processes ----------------------------------------------------

def workers(bench: Bench) -> dict[str, Any]:
    """Throughput of ``tokengate --workers 2`` against one worker, wrk pinned to core 1."""
    args = bench.args
    if why := sides.tokengate_available():
        raise BenchError(f"the workers scenario needs tokengate: {why}")
    authorization = basic(*bench.credentials())
    script = one_header_script(bench.workdir / "workers.lua", authorization)
    # Neither side is pinned: both may use both cores, so only the worker count differs.
    one = sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port, cores=None,
                                name="tokengate-1w")
    two = sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port, workers=2,
                                cores=None, name="tokengate-2w")
    one.key, two.key = "W1", "W2"
    for side in (one, two):
        check_side(side, authorization, checks_auth=True)
    runs: dict[str, list[dict[str, Any]]] = {"W1": [], "W2": []}
    conns = max(args.conns)
    for rnd in range(args.rounds):
        for side in (one, two):
            run = timed_run(bench, side, script, conns, args.duration, args.warmup)
            runs[side.key].append(run)
            bench.say(progress_line(rnd, args.rounds, side, run))
    summary = {k: report.summarize(v) for k, v in runs.items()}
    speedup = summary["W2"]["rps"] / summary["W1"]["rps"]
    procs_two = len([p for p in tree_rss(two.proc.pid)[1]])
    helper = {k: report.median([r["helper_cores"] for r in v]) for k, v in runs.items()}
    used = {k: report.median([r["side_cores"] for r in v]) for k, v in runs.items()}
    checks = [{"name": "throughput --workers 2 / 1 worker", "measured": f"{speedup:.2f}",
               "goal": f">= {report.TARGET_WORKERS_SPEEDUP}",
               "ok": speedup >= report.TARGET_WORKERS_SPEEDUP}]
    lines = [f"workers: tokengate unpinned (cores 0-1), wrk + upstream + Redis pinned to core 1, "
             f"{conns} conns, median of {args.rounds} rounds",
             f"  1 worker : {summary['W1']['rps']:>9,.0f} req/s  p50 {summary['W1']['p50_ms']:.2f} ms"
             f"  gateway cores {used['W1']:.2f}  helper cores {helper['W1']:.2f}",
             f"  2 workers: {summary['W2']['rps']:>9,.0f} req/s  p50 {summary['W2']['p50_ms']:.2f} ms"
             f"  gateway cores {used['W2']:.2f}  helper cores {helper['W2']:.2f}"
             f"  ({procs_two} processes)",
             "", report.target_lines(checks)]
    print("\n".join(lines))
    return {"scenario": "workers", "summary": summary, "gateway_cores": used,
            "helper_cores": helper, "processes_with_2_workers": procs_two, "runs": runs,
            "checks": checks}
