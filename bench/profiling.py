"""The profile scenario: py-spy samples a proxy under wrk load; a summary of where time goes.

py-spy writes collapsed stacks (``frame;frame;... count``; speedscope and
flamegraph.pl read them as they are) to ``bench/results/``; this module prints
the functions with the most samples, self and inclusive, and the share of
samples by area (tokengate's own packages, aiohttp server/client, redis,
logging, metrics, the event loop).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import authz_side
import report
import sides
from load import one_header_script
from measure import Bench, basic, check_side
from procs import HELPER_CORE, BenchError, cpu_seconds, pinned

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Areas, matched in order against a frame's file path; the first match names the area.
AREAS = (
    ("tokengate proxy", "/gateway/proxy/"),
    ("tokengate store", "/gateway/store/"),
    ("tokengate policy", "/gateway/policy/"),
    ("tokengate logs", "/gateway/logs"),
    ("tokengate metrics", "/gateway/metrics"),
    ("tokengate other", "/gateway/"),
    ("bare proxy", "/bare_proxy.py"),
    ("redis client", "/redis/"),
    ("prometheus_client", "/prometheus_client/"),
    ("logging", "/logging/"),
    ("json", "/json/"),
    ("uuid", "/uuid.py"),
    ("aiohttp client", "/aiohttp/client"),
    ("aiohttp connector", "/aiohttp/connector"),
    ("aiohttp http writer", "/aiohttp/http_writer"),
    ("aiohttp server", "/aiohttp/web"),
    ("aiohttp other", "/aiohttp/"),
    ("multidict/yarl", "/yarl/"),
    ("multidict/yarl", "/multidict/"),
    ("asyncio", "/asyncio/"),
    ("generated code (dataclasses etc.)", "<string>"),
)


# Frames every sample shares (interpreter start-up, the CLI, the loop runner): left out of
# the inclusive lists, where they would only say "100%".
ROOT_FILES = ("<frozen runpy>", "gateway/__main__.py", "gateway/cli.py", "asyncio/runners.py",
              "aiohttp/web.py", "asyncio/base_events.py")
ROOT_FUNCS = frozenset({"<module>", "main"})
# The files whose functions are the request's stages (middlewares and the handler): each
# sample is charged to the deepest such frame on its stack, so a middleware's share is its
# own work plus the library calls it makes, without the stages nested inside it.
STAGE_FILES = ("gateway/proxy/app.py", "gateway/proxy/authz.py", "bare_proxy.py")
# uvloop's event loop is C with no Python frames: its own time (polling, socket reads and
# writes, callbacks' glue) shows as the self time of whichever function started the loop.
LOOP_FUNCS = frozenset({"Runner.run", "run_app", "BaseEventLoop.run_until_complete",
                        "BaseEventLoop.run_forever"})
LOOP = "event loop (uvloop, C)"
OUTSIDE = "outside the handler chain (HTTP parsing, writes, event loop, background)"


def _parse(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame)
    if not m:
        return frame, ""
    return m.group("func"), m.group("file")


def _area(path: str, func: str = "") -> str:
    if func in LOOP_FUNCS:
        return LOOP
    path = "/" + path.lstrip("/")
    return next((name for name, part in AREAS if part in path), "other")


def summarize(collapsed: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample counts per function, and self samples per area."""
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_area: Counter[str] = Counter()
    incl_area: Counter[str] = Counter()
    stage: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = [_parse(f) for f in stack.split(";") if f]
        # The process and thread names py-spy may put first are not frames.
        frames = [(fn, path) for fn, path in frames if path]
        if not frames:
            continue
        names = [f"{fn} ({Path(path).name})" for fn, path in frames]
        self_fn[names[-1]] += count
        self_area[_area(frames[-1][1], frames[-1][0])] += count
        stages = [f"{fn.split('.')[0]} ({Path(path).name})" for fn, path in frames
                  if path.endswith(STAGE_FILES) and fn not in ROOT_FUNCS]
        stage[stages[-1] if stages else OUTSIDE] += count
        if not stages:
            outside[_area(frames[-1][1], frames[-1][0])] += count
        inner = [(name, path) for name, (fn, path) in zip(names, frames, strict=True)
                 if not path.endswith(ROOT_FILES) and fn not in ROOT_FUNCS]
        for name, _ in set(inner):
            incl_fn[name] += count
        for area in {_area(path) for _, path in inner}:
            incl_area[area] += count
    return {
        "samples": total,
        "self_by_function": self_fn.most_common(top),
        "inclusive_by_function": incl_fn.most_common(top),
        "self_by_area": self_area.most_common(),
        "inclusive_by_area": incl_area.most_common(),
        "by_stage": stage.most_common(),
        "outside_by_area": outside.most_common(6),
    }


def format_summary(summary: dict[str, Any], label: str, seconds: int) -> str:
    """The printed profile summary: % of samples, and CPU microseconds per request."""
    total = summary["samples"] or 1
    per_req = summary.get("cpu_us_per_request")
    lines = [(f"profile: {label} under wrk -c32 for {seconds}s, py-spy, "
              f"{summary['samples']:,} samples")]
    if per_req:
        lines.append(f"  {summary['rps']:,.0f} req/s while sampled; {per_req:.0f} us of CPU "
                     f"per request ({summary['cores']:.2f} cores); columns: % of samples, "
                     f"us per request")

    def row(name: str, n: int) -> str:
        us = f"{per_req * n / total:6.1f} us" if per_req else ""
        return f"    {100 * n / total:5.1f}%  {us}  {name}"

    for title, key in (("by request stage (deepest middleware/handler on the stack)",
                        "by_stage"),
                       ("self time by area", "self_by_area"),
                       ("inclusive time by area", "inclusive_by_area"),
                       ("self time by function", "self_by_function"),
                       ("inclusive time by function", "inclusive_by_function")):
        lines.append(f"  {title}:")
        for name, n in summary[key]:
            lines.append(row(name, n))
            if name == OUTSIDE:
                lines += ["      " + row(f"{area}", m).strip()
                          for area, m in summary["outside_by_area"]]
    return "\n".join(lines)


def profile(bench: Bench) -> dict[str, Any]:
    """Sample the first side named by ``--only`` (tokengate by default) under load.

    For ``--only authz`` the sampled process is D's tokengate, loaded through D's nginx.
    """
    spy = shutil.which("py-spy")
    if spy is None:
        print("bench: 'py-spy' is missing; install it with: pip install py-spy")
        raise SystemExit(2)
    which = "tokengate" if not bench.args.only_given else bench.args.only[0]
    if which == "nginx":
        raise BenchError("--profile samples a Python process: use --only bare, tokengate "
                         "or authz")
    if which in ("tokengate", "tokengate-aiohttp", "authz"):
        if why := sides.tokengate_available() or (which == "authz" and authz_side.available()):
            raise BenchError(f"the profile needs tokengate: {why}")
        authorization = basic(*bench.credentials())
        if which == "authz":
            side = authz_side.start(bench.procs, bench.workdir, bench.tg, bench.upstream_port)
        else:
            side = sides.start_tokengate(bench.procs, bench.tg, bench.upstream_port,
                                         name="tokengate-prof",
                                         client="aiohttp" if which == "tokengate-aiohttp"
                                         else bench.args.client)
    else:
        authorization = basic("bench", "not-checked")
        side = sides.start_bare(bench.procs, bench.upstream_port)
    try:
        check_side(side, authorization, checks_auth=which != "bare")
        # D's Python process is its tokengate, behind nginx.
        target = side.companions[0] if side.companions else side.proc
        return _profile(bench, side, spy, authorization, target.pid)
    finally:
        for proc in (side.proc, *side.companions):
            bench.procs.stop(proc)


def _profile(bench: Bench, side: sides.Side, spy: str, authorization: str,
             pid: int) -> dict[str, Any]:
    seconds = bench.args.duration * 2
    script = one_header_script(bench.workdir / "profile.lua", authorization)
    report.RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = report.RESULTS / f"profile-{re.sub(r'[^a-z0-9]+', '-', side.label)}-{stamp}.collapsed.txt"
    load = subprocess.Popen(
        pinned([bench.wrk, "-t1", "-c32", f"-d{seconds + 3}s", "--timeout=5s", "-s",
                str(script), side.url], HELPER_CORE),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)  # warm-up
        bench.say(f"bench: py-spy record on {side.label} (pid {pid}) for {seconds}s")
        side_cpu0 = sum(cpu_seconds(p) for p in side.pids)
        cpu0, up0, t0 = (cpu_seconds(pid), sides.upstream_requests(bench.upstream_port),
                         time.monotonic())
        done = subprocess.run(
            pinned([spy, "record", "--pid", str(pid), "--duration", str(seconds),
                    "--rate", "200", "--format", "raw", "--output", str(out)],
                   HELPER_CORE),
            check=False, capture_output=True, text=True, timeout=seconds + 60)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(pid) - cpu0
        side_cpu = sum(cpu_seconds(p) for p in side.pids) - side_cpu0
        forwarded = sides.upstream_requests(bench.upstream_port) - up0 - 1
        if done.returncode != 0 or not out.exists():
            raise BenchError(f"py-spy failed ({done.returncode}): {done.stderr[-1500:]}")
    finally:
        load.terminate()
        load.wait(10)
    summary = summarize(out)
    summary.update(rps=forwarded / wall, cores=cpu / wall,
                   cpu_us_per_request=1e6 * cpu / forwarded if forwarded else 0.0,
                   side_cpu_us_per_request=1e6 * side_cpu / forwarded if forwarded else 0.0)
    print(format_summary(summary, side.label, seconds))
    if side.companions:
        print(f"  the whole side (nginx and tokengate): {summary['side_cpu_us_per_request']:.0f} "
              f"us of CPU per request; tokengate alone {summary['cpu_us_per_request']:.0f} us")
    print(f"collapsed stacks: {out.relative_to(sides.REPO)}")
    return {"scenario": "profile", "side": side.label, "seconds": seconds,
            "collapsed": str(out), **summary}
