"""What every scenario shares: the common processes, sanity checks, one measured wrk run."""

from __future__ import annotations

import argparse
import base64
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procs
import report
import sides
from load import WrkResult, run_wrk
from procs import (
    BenchError,
    Processes,
    RedisStats,
    commandstats_delta,
    cpu_seconds,
    machine_busy_seconds,
)


@dataclass
class Bench:
    """The options, the tools, Redis, the upstream and tokengate's secrets of one run."""

    args: argparse.Namespace
    procs: Processes
    workdir: Path
    wrk: str
    redis_port: int
    upstream_port: int
    tg: sides.TokengateEnv
    helpers: list[subprocess.Popen[bytes]]
    # Seconds this run may still spend waiting out other work on the machine.
    patience: float = 0.0
    _credentials: tuple[str, str] | None = field(default=None, repr=False)

    def say(self, msg: str) -> None:
        """Progress on stderr, so stdout holds only the report."""
        print(msg, file=sys.stderr, flush=True)

    def helper_cpu(self) -> float:
        """CPU seconds used so far by Redis and the upstream."""
        return sum(cpu_seconds(p.pid) for p in self.helpers)

    def credentials(self) -> tuple[str, str]:
        """The bench token and secret, created through the CLI the first time."""
        if self._credentials is None:
            self.say("bench: creating an admin user and a workspace token through the CLI")
            self._credentials = sides.create_bench_token(self.tg)
        return self._credentials


def start_common(args: argparse.Namespace, registry: Processes, workdir: Path) -> Bench:
    """Check the tools; start Redis and the upstream, shared by every scenario."""
    wrk = procs.require_tool("wrk", "wrk")
    procs.require_tool("nginx", "nginx")
    procs.require_tool("redis-server", "redis-server")
    if procs.cpu_count() < 2:
        procs.PINNING["on"] = False
        print("bench: warning: fewer than 2 usable cores; running without taskset pinning",
              file=sys.stderr)
    else:
        procs.require_tool("taskset", "util-linux")
    redis_port = sides.start_redis(registry, workdir)
    upstream_port = sides.start_upstream(registry, workdir)
    helpers = [registry.named("redis"), registry.named("upstream")]
    tg = sides.TokengateEnv(store_url=f"redis://127.0.0.1:{redis_port}/0")
    return Bench(args, registry, workdir, wrk, redis_port, upstream_port, tg, helpers,
                 patience=args.patience)


def basic(token: str, secret: str) -> str:
    """An ``Authorization: Basic`` value."""
    return "Basic " + base64.b64encode(f"{token}:{secret}".encode()).decode()


def get(url: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
    """One GET; status, headers and body, whatever the status."""
    headers = {"Authorization": authorization} if authorization else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def check_side(side: sides.Side, authorization: str, checks_auth: bool) -> None:
    """Prove the side proxies an authorized request and refuses one without credentials."""
    status, headers, body = get(side.url, authorization)
    if status != 200 or b"bench-upstream" not in body:
        raise BenchError(f"{side.key} {side.label}: expected 200 from the upstream, got "
                         f"{status}: {body[:300]!r}")
    if checks_auth:
        status, refusal, body = get(side.url, None)
        if status != 401:
            raise BenchError(f"{side.key} {side.label}: a request without credentials got "
                             f"{status}, not 401: {body[:300]!r}")
        if "WWW-Authenticate" not in refusal:
            raise BenchError(f"{side.key} {side.label}: its 401 carries no WWW-Authenticate")
    if "tokengate" in side.label:
        limit = headers.get("X-RateLimit-Limit")
        side.notes["x_ratelimit_limit"] = str(limit)
        if limit is None:
            print("bench: warning: tokengate's answer carries no X-RateLimit-Limit header",
                  file=sys.stderr)


def wait_quiet(bench: Bench) -> None:
    """Wait (within the run's patience) until other work on the machine uses < NOISY_CORES.

    The machine is shared (other people's test runs); between measured runs the
    benchmark's own processes are idle, so what is busy then is someone else.
    """
    announced = False
    while bench.patience > 0:
        before = machine_busy_seconds()
        time.sleep(0.5)
        other = (machine_busy_seconds() - before) / 0.5
        if other < report.NOISY_CORES:
            return
        bench.patience -= 0.5
        if not announced:
            bench.say(f"  (machine busy with other work, {other:.1f} cores: waiting, "
                      f"{bench.patience:.0f}s of patience left)")
            announced = True


def side_cpu(side: sides.Side) -> float:
    """CPU seconds used so far by every process of ``side``."""
    return sum(cpu_seconds(pid) for pid in side.pids)


def timed_run(bench: Bench, side: sides.Side, script: Path, conns: int, seconds: float,
              warmup: float) -> dict[str, Any]:
    """One measured run; redone once if other work disturbed it and patience allows."""
    run = _timed_run(bench, side, script, conns, seconds, warmup)
    if run["other_cores"] >= report.NOISY_CORES and bench.patience >= seconds + warmup:
        bench.patience -= seconds + warmup
        bench.say(progress_line(-1, 0, side, run) + "  (disturbed: redone)")
        run = _timed_run(bench, side, script, conns, seconds, warmup)
        run["redone"] = True
    return run


def _timed_run(bench: Bench, side: sides.Side, script: Path, conns: int, seconds: float,
               warmup: float) -> dict[str, Any]:
    """A warm-up, then one measured wrk run with Redis and CPU accounting around it."""
    wait_quiet(bench)
    if warmup > 0:
        run_wrk(bench.wrk, side.url, script, connections=conns, seconds=warmup)
    stats = RedisStats(bench.redis_port)
    before = stats.commandstats()
    upstream_before = sides.upstream_requests(bench.upstream_port)
    cpu_side, cpu_help = side_cpu(side), bench.helper_cpu()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = machine_busy_seconds()
    t0 = time.monotonic()
    result: WrkResult = run_wrk(bench.wrk, side.url, script, connections=conns, seconds=seconds)
    wall = time.monotonic() - t0
    busy = machine_busy_seconds() - busy
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Every request the proxy forwarded, including those wrk cut off at the end.
    forwarded = sides.upstream_requests(bench.upstream_port) - upstream_before - 1
    redis = commandstats_delta(before, stats.commandstats())
    wrk_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    side_used = side_cpu(side) - cpu_side
    helper_cpu = bench.helper_cpu() - cpu_help + wrk_cpu
    return {
        **result.as_dict(),
        "errors": result.errors,
        "connections": conns,
        "forwarded": forwarded,
        "redis": redis,
        "side_cores": round(side_used / wall, 3),
        "helper_cores": round(helper_cpu / wall, 3),
        # Busy time of the machine not charged to the side, wrk, Redis or the upstream:
        # kernel networking work not billed to a process, and anything else running.
        "other_cores": round(max(0.0, busy - side_used - helper_cpu) / wall, 3),
    }


def progress_line(rnd: int, rounds: int, side: sides.Side, run: dict[str, Any]) -> str:
    """One line on stderr per measured run."""
    err = f"  ERRORS {run['errors']}" if run["errors"] else ""
    err += f"  other {run['other_cores']:.2f}" if run["other_cores"] >= report.NOISY_CORES else ""
    where = f"round {rnd + 1}/{rounds}" if rounds else "        ---"
    return (f"  {where}  c={run['connections']:<3} {side.key} {side.label:<18}"
            f" {run['rps']:>9,.0f} req/s  p50 {run['p50_us'] / 1000:6.2f} ms"
            f"  p99 {run['p99_us'] / 1000:6.2f} ms  cpu {run['side_cores']:.2f}{err}")
