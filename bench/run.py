#!/usr/bin/env python3
"""Side-by-side benchmark: a bare aiohttp proxy (A), nginx auth_basic (B), tokengate (C),
nginx auth_request with tokengate's decision endpoint (D).

    python bench/run.py             # A, B, C, D in turns; a few minutes
    python bench/run.py --quick     # the same in about 2 minutes
    python bench/run.py --authz     # quick: D and the sides its targets compare it with
    python bench/run.py --memory    # tokengate RSS over 2 x 200k requests on 10k tokens
    python bench/run.py --workers   # tokengate --workers 2 against 1 worker
    python bench/run.py --all       # all three scenarios
    python bench/run.py --store cluster   # the hot path on a Redis Cluster vs standalone

See bench/README.md for what each side is and how to read the output.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cluster
import procs
import profiling
import report
import scenarios
import sides
from compare import SIDE_KEYS, compare
from measure import Bench, start_common
from procs import BenchError, Processes


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())

    def version(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=10)
        except OSError:
            return "n/a"
        text = (done.stdout + done.stderr).strip()
        return text.splitlines()[0] if text else "n/a"

    import aiohttp

    try:
        import uvloop
        uv = str(getattr(uvloop, "__version__", "?"))
    except ImportError:
        uv = "not installed"
    commit = version(["git", "-C", str(sides.REPO), "describe", "--always", "--dirty"])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": procs.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uv,
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"]),
        "redis": version(["redis-server", "--version"]),
        "commit": commit,
        "pinning": ("process under test on core 0; wrk, upstream and Redis on core 1"
                    if procs.PINNING["on"] else "none"),
    }


# What D's targets compare it with (issue 12): A and C for throughput, B for latency.
AUTHZ_SIDES = "bare,nginx,tokengate,authz"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="bench/run.py",
                                description="tokengate side-by-side benchmark (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds: under 2 minutes")
    p.add_argument("--memory", action="store_true",
                   help="run the memory scenario (tokengate only) instead of the comparison")
    p.add_argument("--workers", action="store_true",
                   help="run the --workers 2 vs 1 scenario instead of the comparison")
    p.add_argument("--profile", action="store_true",
                   help="py-spy profile of tokengate (or --only bare) under load")
    p.add_argument("--all", action="store_true", help="comparison, memory and workers")
    p.add_argument("--store", choices=["redis", "cluster"], default="redis",
                   help="cluster: the hot path and tokengate on a three-primary Redis Cluster "
                        "against standalone Redis, instead of the comparison")
    p.add_argument("--authz", action="store_true",
                   help="quick comparison of D (nginx + tokengate authz) with the sides its "
                        "targets name: --quick --only bare,nginx,tokengate,authz")
    p.add_argument("--only", default=None,
                   help="comma-separated sides of the comparison: "
                        "bare,nginx,tokengate,tokengate-aiohttp,authz")
    p.add_argument("--rounds", type=int, help="rounds of A,B,C,D turns (default 4, quick 2)")
    p.add_argument("--duration", type=int, help="seconds per measured run (default 8, quick 4)")
    p.add_argument("--warmup", type=int, help="seconds of warm-up before each run "
                                              "(default 2, quick 1)")
    p.add_argument("--conns", default="32,1", help="connection counts (default 32,1)")
    p.add_argument("--client", choices=("lean", "aiohttp"), default="lean",
                   help="tokengate's upstream.client for C, --profile, --memory and --workers "
                        "(default lean; the comparison also runs E, tokengate with aiohttp's)")
    p.add_argument("--nginx-hash", choices=sides.HASHES, default="ssha",
                   help="htpasswd scheme for nginx (default ssha; see README)")
    p.add_argument("--memory-requests", type=int, default=200_000)
    p.add_argument("--memory-tokens", type=int, default=10_000)
    p.add_argument("--patience", type=float,
                   help="seconds the run may spend waiting out other work on the machine "
                        "(default 180, quick 30)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = p.parse_args(argv)
    if args.authz:
        if args.only is not None or args.memory or args.workers or args.all or args.profile:
            p.error("--authz is its own comparison: no --only, --memory, --workers, --all "
                    "or --profile with it")
        args.quick = True
        args.only = AUTHZ_SIDES
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.duration = args.duration or (4 if args.quick else 8)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.conns = [int(c) for c in args.conns.split(",")]
    if args.patience is None:
        args.patience = 30.0 if args.quick else 180.0
    args.only_given = args.only is not None
    args.only = (args.only or ",".join(SIDE_KEYS)).split(",")
    unknown = [s for s in args.only if s not in SIDE_KEYS]
    if unknown:
        p.error(f"unknown side(s) {unknown}; choose from {sorted(SIDE_KEYS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; 0 on success, 1 on a failure, 2 for a missing tool."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="tokengate-bench-"))
    registry = Processes(workdir)
    plan: list[tuple[str, Callable[[Bench], dict[str, Any]]]] = []
    if args.store == "cluster":
        plan.append(("cluster", cluster.cluster))
    elif args.all or not (args.memory or args.workers or args.profile):
        plan.append(("compare", compare))
    if args.all or args.memory:
        plan.append(("memory", scenarios.memory))
    if args.all or args.workers:
        plan.append(("workers", scenarios.workers))
    if args.profile:
        plan.append(("profile", profiling.profile))
    started = time.monotonic()
    try:
        bench = start_common(args, registry, workdir)
        info = machine_info()
        print(f"machine: {info['cpu']}, {info['usable_cores']} cores, Linux {info['kernel']}; "
              f"Python {info['python']}, aiohttp {info['aiohttp']}, uvloop {info['uvloop']}; "
              f"{info['nginx']}; {info['redis'].split(' sha=')[0]}; tree {info['commit']}")
        print(f"pinning: {info['pinning']}")
        for name, scenario in plan:
            print()
            data = scenario(bench)
            data.update(machine=info, options={k: v for k, v in vars(args).items()})
            path = report.write_json(name, data)
            print(f"results: {path.relative_to(sides.REPO)}")
        print(f"\ntotal time {time.monotonic() - started:.0f}s")
        return 0
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        print(f"bench: logs in {workdir} (kept)", file=sys.stderr)
        args.keep = True
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    finally:
        registry.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"bench: work directory kept: {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
