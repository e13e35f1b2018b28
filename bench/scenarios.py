"""The tokengate-only scenarios: memory over many tokens, and --workers 2 against 1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis_usage
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
    side = sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port, name="tokengate-mem",
                                 client=bench.args.client)
    try:
        return _memory(bench, side, args.memory_requests, args.memory_tokens)
    finally:
        bench.procs.stop(side.proc)


def _memory(bench: Bench, side: sides.Side, n: int, m: int) -> dict[str, Any]:
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
    passes: list[dict[str, Any]] = []
    for i in (1, 2):
        before = stats.commandstats()
        upstream_before = sides.upstream_requests(bench.upstream_port)
        res = run_wrk_until_stop(bench.wrk, side.url, script, connections=32, max_seconds=900)
        forwarded = sides.upstream_requests(bench.upstream_port) - upstream_before - 1
        redis = commandstats_delta(before, stats.commandstats())
        rss, _ = tree_rss(side.proc.pid)
        passes.append({**res.as_dict(), "errors": res.errors, "forwarded": forwarded,
                       "rss_bytes": rss, "redis": redis})
        bench.say(f"  pass {i}: {res.requests:,} requests, {res.rps:,.0f} req/s, "
                  f"{res.errors} errors, RSS {rss / MB:.1f} MB")
    bench.say("bench: sampling tokengate's Redis traffic with MONITOR (not timed)")
    sample = redis_usage.monitor_sample(bench, side, script)
    for p in passes:
        sent, unclassified, breakdown = redis_usage.per_request([p["redis"]], p["forwarded"],
                                                                sample)
        p.update(redis_sent_per_request=sent, redis_unclassified_per_request=unclassified,
                 redis_commands_per_request=breakdown)

    first, second = (p["rss_bytes"] / MB for p in passes)
    growth = second - first
    errors = sum(p["errors"] for p in passes)
    checks = [
        report.check("errors and non-2xx answers", str(errors), "0", errors == 0),
        report.check(f"RSS after first {n:,} requests", f"{first:.1f} MB",
                     f"<= {report.TARGET_RSS_MB:g} MB", first <= report.TARGET_RSS_MB),
        report.check(f"RSS after second {n:,} requests", f"{second:.1f} MB",
                     f"<= {report.TARGET_RSS_MB:g} MB", second <= report.TARGET_RSS_MB),
        report.check("RSS growth over the second pass", f"{growth:+.1f} MB",
                     f"<= {report.TARGET_RSS_GROWTH_MB:g} MB",
                     growth <= report.TARGET_RSS_GROWTH_MB),
    ]
    lines = [(f"memory: tokengate, 1 worker, {m:,} distinct tokens cycled by wrk at 32 conns; "
              f"RSS {rss0 / MB:.1f} MB before the first request")]
    for i, p in enumerate(passes, 1):
        lines.append(f"  pass {i}: {p['requests']:,} requests at {p['rps']:,.0f} req/s, "
                     f"RSS {p['rss_bytes'] / MB:.1f} MB")
        for who in ("client", "unclassified", "script"):
            cmds = ", ".join(f"{cmd} {v['per_request']:.3f}"
                             for cmd, v in p["redis_commands_per_request"].items()
                             if v["issued_by"] == who and v["per_request"] >= 0.001)
            if cmds:
                title = {"client": "sent", "unclassified": "unclassified",
                         "script": "inside scripts"}[who]
                lines.append(f"    Redis commands per request, {title}: {cmds}")
    lines += ["", report.target_lines(checks)]
    print("\n".join(lines))
    return {"scenario": "memory", "tokens": m, "requests_per_pass": n, "rss_start": rss0,
            "passes": passes, "monitor_sample": sample, "checks": checks}


# --- workers: one port, two processes ----------------------------------------------------

def workers(bench: Bench) -> dict[str, Any]:
    """Throughput of ``tokengate --workers 2`` against one worker, wrk pinned to core 1."""
    if why := sides.tokengate_available():
        raise BenchError(f"the workers scenario needs tokengate: {why}")
    authorization = basic(*bench.credentials())
    # Neither is pinned: both may use both cores, so only the worker count differs.
    one = sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port, cores=None,
                                name="tokengate-1w", client=bench.args.client)
    two = sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port, workers=2,
                                cores=None, name="tokengate-2w", client=bench.args.client)
    try:
        return _workers(bench, one, two, authorization)
    finally:
        bench.procs.stop(one.proc)
        bench.procs.stop(two.proc)


def _workers(bench: Bench, one: sides.Side, two: sides.Side, authorization: str
             ) -> dict[str, Any]:
    args = bench.args
    script = one_header_script(bench.workdir / "workers.lua", authorization)
    one.key, two.key = "W1", "W2"
    for side in (one, two):
        check_side(side, authorization, checks_auth=True)
    runs: dict[str, list[dict[str, Any]]] = {"W1": [], "W2": []}
    conns = max(args.conns)
    bench.say(f"bench: {args.rounds} rounds x 2 sides at {conns} conns, {args.duration}s each "
              f"after a {args.warmup}s warm-up")
    for rnd in range(args.rounds):
        for side in (one, two):
            run = timed_run(bench, side, script, conns, args.duration, args.warmup)
            runs[side.key].append(run)
            bench.say(progress_line(rnd, args.rounds, side, run))
    summary = {k: report.summarize(v) for k, v in runs.items()}
    helper = {k: report.median([r["helper_cores"] for r in report.clean(v)])
              for k, v in runs.items()}
    used = {k: report.median([r["side_cores"] for r in report.clean(v)])
            for k, v in runs.items()}
    # Paired by round, as in the comparison: runs seconds apart share the machine's state.
    pairs = list(zip(runs["W1"], runs["W2"], strict=True))
    quiet = [(a, b) for a, b in pairs
             if max(a["other_cores"], b["other_cores"]) < report.NOISY_CORES] or pairs
    speedup = report.median([b["rps"] / a["rps"] for a, b in quiet])
    processes = len(tree_rss(two.proc.pid)[1])
    checks = [report.check(f"throughput --workers 2 / 1 worker ({len(quiet)} rounds)",
                           f"{speedup:.2f}",
                           f">= {report.TARGET_WORKERS_SPEEDUP}",
                           speedup >= report.TARGET_WORKERS_SPEEDUP)]
    lines = [(f"workers: tokengate unpinned (cores 0-1); wrk, upstream and Redis pinned to "
              f"core 1; {conns} conns; median over rounds")]
    for key, label in (("W1", "1 worker "), ("W2", "2 workers")):
        s = summary[key]
        lines.append(f"  {label}: {s['rps']:>9,.0f} req/s  p50 {s['p50_ms']:.2f} ms  "
                     f"p99 {s['p99_ms']:.2f} ms  gateway cores {used[key]:.2f}  "
                     f"helper cores {helper[key]:.2f}")
    lines.append(f"  (--workers 2 ran as {processes} processes)")
    lines += ["", report.target_lines(checks)]
    print("\n".join(lines))
    return {"scenario": "workers", "summary": summary, "gateway_cores": used,
            "helper_cores": helper, "processes_with_2_workers": processes, "runs": runs,
            "checks": checks}
