"""``--store cluster``: the hot path on a Redis Cluster against the standalone lean path.

Two measurements, both against a private three-primary cluster and the private
standalone Redis:

* the hot-path call alone (the rate-limit script, as the proxy makes it: 32
  concurrent callers, 1000 subjects spread over every primary), run in this
  process pinned to the server core: CPU per call on the standalone lean
  connection, through the cluster's slot router, and through redis-py (one
  server, and its cluster client) for reference; plus Redis's own time per call;
* tokengate end to end (wrk through ``tokengate serve``) on ``redis://`` and on
  ``redis+cluster://``: throughput, tokengate CPU per request, and Redis time
  and Redis CPU per proxied request, which bound the requests/s one primary
  can carry.

The issue 14 target: the routed hot path within 1.5 x the CPU of the standalone
lean path (redis-py's cluster client costs about 7 x).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sides
from load import one_header_script, run_wrk
from measure import Bench, basic, progress_line, side_cpu, wait_quiet
from procs import (
    HELPER_CORE,
    PINNING,
    SERVER_CORE,
    BenchError,
    cpu_seconds,
    free_port,
    wait_for_port,
)

sys.path.insert(0, str(sides.REPO))

CALLS = 30_000
CONCURRENCY = 32
SUBJECTS = 1000
TARGET_RATIO = 1.5


def start_cluster(bench: Bench, primaries: int = 3) -> list[int]:
    """Start and join a cluster of ``primaries`` redis-server processes; their ports."""
    import redis

    exe = "redis-server"
    ports = []
    for i in range(primaries):
        port, bus = free_port(), free_port()
        data = bench.workdir / f"cluster-{i}"
        data.mkdir()
        proc = bench.procs.start(f"cluster-{i}", [
            exe, "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf"),
            "--save", "", "--appendonly", "no", "--dir", str(data)], cores=HELPER_CORE)
        wait_for_port(port, proc, f"cluster-{i}", bench.procs)
        bench.helpers.append(proc)
        ports.append((port, bus))
    per = 16384 // primaries
    for i, (port, _) in enumerate(ports):
        last = 16383 if i == primaries - 1 else (i + 1) * per - 1
        redis.Redis(port=port).execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
    for port, bus in ports[1:]:
        redis.Redis(port=ports[0][0]).execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [redis.Redis(port=p).execute_command("CLUSTER", "INFO") for p, _ in ports]
        if all("cluster_state:ok" in (s.decode() if isinstance(s, bytes) else str(s))
               or (isinstance(s, dict) and s.get("cluster_state") == "ok") for s in states):
            return [p for p, _ in ports]
        time.sleep(0.1)
    raise BenchError("the bench cluster did not reach cluster_state:ok")


def script_usec(ports: list[int]) -> tuple[int, int]:
    """EVALSHA and EVAL calls and microseconds so far, summed over ``ports``."""
    import redis

    calls = usec = 0
    for port in ports:
        stats = redis.Redis(port=port).info("commandstats")
        for name in ("cmdstat_evalsha", "cmdstat_eval"):
            calls += int(stats.get(name, {}).get("calls", 0))
            usec += int(stats.get(name, {}).get("usec", 0))
    return calls, usec


async def _hot_path(limiter: Any) -> tuple[float, float]:
    subjects = [f"subject-{i}" for i in range(SUBJECTS)]
    for s in subjects:  # every node knows the script; every connection is open
        await limiter.hit(s, 10**9, 30)
    per = CALLS // CONCURRENCY

    async def caller(i: int) -> None:
        for j in range(per):
            await limiter.hit(subjects[(i * per + j) % SUBJECTS], 10**9, 30)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(CONCURRENCY)))
    used = time.process_time() - cpu, time.perf_counter() - wall
    if limiter._fast is not None:
        await limiter._fast.close()
    await limiter._client.aclose()
    return used


def _run(coro: Awaitable[tuple[float, float]]) -> tuple[float, float]:
    """On uvloop where installed, as ``tokengate serve`` runs."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type,no-any-return]


def hot_path(bench: Bench, cluster_ports: list[int]) -> dict[str, Any]:
    """CPU and Redis time per hot-path call on each way in."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    from gateway.store.cluster import SlotRouter, parse_cluster_url
    from gateway.store.cluster_client import ClusterClient
    from gateway.store.ratelimit_redis import RedisRateLimiter
    from gateway.store.resp import RespConnection

    single = f"redis://127.0.0.1:{bench.redis_port}/0"
    cluster = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster_ports)

    async def lean() -> Any:
        return RedisRateLimiter(aioredis.Redis.from_url(single), "lean:",
                                fast=RespConnection(single))

    async def routed() -> Any:
        router = SlotRouter(parse_cluster_url(cluster))
        return RedisRateLimiter(ClusterClient(router), "routed:", fast=router)

    async def redispy() -> Any:
        return RedisRateLimiter(aioredis.Redis.from_url(single), "redispy:")

    async def redispy_cluster() -> Any:
        client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in cluster_ports])
        await client.initialize()  # lazily, concurrent first calls race (cluster_client.py)
        return RedisRateLimiter(client, "rpcluster:")  # type: ignore[arg-type]

    ways: list[tuple[str, Callable[[], Awaitable[Any]], list[int]]] = [
        ("standalone lean connection", lean, [bench.redis_port]),
        ("cluster slot router", routed, cluster_ports),
        ("standalone redis-py", redispy, [bench.redis_port]),
        ("cluster redis-py RedisCluster", redispy_cluster, cluster_ports)]
    out: dict[str, Any] = {}
    affinity = os.sched_getaffinity(0)
    if PINNING["on"]:
        os.sched_setaffinity(0, {int(SERVER_CORE)})
    try:
        for name, make, ports in ways:
            wait_quiet(bench)

            async def measure(make: Callable[[], Awaitable[Any]] = make) -> tuple[float, float]:
                return await _hot_path(await make())

            calls0, usec0 = script_usec(ports)
            cpu, wall = _run(measure())
            calls1, usec1 = script_usec(ports)
            out[name] = {"cpu_us_per_call": round(cpu / CALLS * 1e6, 2),
                         "calls_per_s": round(CALLS / wall),
                         "redis_us_per_call": round((usec1 - usec0) / max(1, calls1 - calls0), 2)}
            bench.say(f"  hot path  {name:<32} {out[name]['cpu_us_per_call']:7.2f} us CPU/call"
                      f"  {out[name]['calls_per_s']:>8,} calls/s"
                      f"  redis {out[name]['redis_us_per_call']:.2f} us/call")
    finally:
        os.sched_setaffinity(0, affinity)
    base = out["standalone lean connection"]["cpu_us_per_call"]
    for figures in out.values():
        figures["ratio_to_standalone_lean"] = round(figures["cpu_us_per_call"] / base, 2)
    return out


def end_to_end(bench: Bench, cluster_ports: list[int]) -> dict[str, Any]:
    """tokengate serve on each store, in alternating runs: throughput, CPU and Redis
    time per request."""
    stores = {"standalone": (f"redis://127.0.0.1:{bench.redis_port}/0", [bench.redis_port],
                             [bench.procs.named("redis").pid]),
              "cluster": ("redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster_ports),
                          cluster_ports, [bench.procs.named(f"cluster-{i}").pid
                                          for i in range(len(cluster_ports))])}
    started: dict[str, tuple[sides.Side, Path]] = {}
    for name, (url, _, _) in stores.items():
        tg = sides.TokengateEnv(store_url=url, master_key=bench.tg.master_key)
        token, secret = sides.create_bench_token(tg) if name == "cluster" else bench.credentials()
        script = one_header_script(bench.workdir / f"auth-{name}.lua", basic(token, secret))
        started[name] = (sides.start_tokengate(bench.procs, tg, bench.upstream_port,
                                               name=f"tg-{name}"), script)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in stores}
    for rnd in range(bench.args.rounds):
        for name, (_, ports, redis_pids) in stores.items():
            side, script = started[name]
            wait_quiet(bench)
            run_wrk(bench.wrk, side.url, script, connections=32, seconds=bench.args.warmup or 1)
            up0 = sides.upstream_requests(bench.upstream_port)
            cpu0, rcpu0 = side_cpu(side), sum(cpu_seconds(p) for p in redis_pids)
            calls0, usec0 = script_usec(ports)
            result = run_wrk(bench.wrk, side.url, script, connections=32,
                             seconds=bench.args.duration)
            forwarded = max(1, sides.upstream_requests(bench.upstream_port) - up0 - 1)
            calls1, usec1 = script_usec(ports)
            run = {**result.as_dict(), "errors": result.errors, "connections": 32,
                   "forwarded": forwarded,
                   "tokengate_cpu_us_per_request": (side_cpu(side) - cpu0) / forwarded * 1e6,
                   "redis_cpu_us_per_request": (sum(cpu_seconds(p) for p in redis_pids)
                                                - rcpu0) / forwarded * 1e6,
                   "redis_script_us_per_request": (usec1 - usec0) / forwarded,
                   "scripts_per_request": (calls1 - calls0) / forwarded,
                   "side_cores": 0.0, "other_cores": 0.0}
            bench.say(progress_line(rnd, bench.args.rounds, side, run)
                      + f"  {name}: tokengate {run['tokengate_cpu_us_per_request']:.0f} us/req,"
                        f" redis {run['redis_script_us_per_request']:.1f} us/req")
            runs[name].append(run)
    out: dict[str, Any] = {}
    for name, done in runs.items():
        bench.procs.stop(started[name][0].proc)
        best = min(done, key=lambda r: r["tokengate_cpu_us_per_request"])  # least disturbed
        out[name] = {k: round(v, 2) if isinstance(v, float) else v for k, v in best.items()}
        # One primary serves a subject's window; its CPU per request bounds its rate.
        out[name]["requests_per_s_per_primary_core"] = round(
            1e6 / max(0.01, best["redis_cpu_us_per_request"]))
    return out


def cluster(bench: Bench) -> dict[str, Any]:
    """The scenario: hot path alone, then end to end; a verdict on the 1.5 x target."""
    bench.say("cluster: starting a three-primary Redis Cluster")
    ports = start_cluster(bench)
    hot = hot_path(bench, ports)
    e2e = end_to_end(bench, ports)
    ratio = hot["cluster slot router"]["ratio_to_standalone_lean"]
    print(f"hot path: routed {hot['cluster slot router']['cpu_us_per_call']} us CPU/call vs "
          f"standalone lean {hot['standalone lean connection']['cpu_us_per_call']} us = "
          f"{ratio} x (target <= {TARGET_RATIO}); redis-py's cluster client "
          f"{hot['cluster redis-py RedisCluster']['ratio_to_standalone_lean']} x")
    for name, r in e2e.items():
        print(f"end to end on {name:<10}: {r['rps']:,.0f} req/s, tokengate "
              f"{r['tokengate_cpu_us_per_request']:.0f} us CPU/req, Redis "
              f"{r['redis_script_us_per_request']:.1f} us script time and "
              f"{r['redis_cpu_us_per_request']:.1f} us CPU per request "
              f"(~{r['requests_per_s_per_primary_core']:,} req/s per primary core)")
    return {"hot_path": hot, "end_to_end": e2e, "target_ratio": TARGET_RATIO,
            "ratio": ratio, "met": ratio <= TARGET_RATIO, "calls": CALLS,
            "concurrency": CONCURRENCY, "subjects": SUBJECTS, "path": str(Path(__file__).name)}
