"""Driving wrk: the Lua scripts it runs and the figures it reports back.

wrk reports through a ``done`` hook in Lua that prints one machine-readable line
(``WRKJSON {...}``), so nothing here scrapes wrk's human-readable summary.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from procs import HELPER_CORE, BenchError, pinned

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"non_2xx":%d,"timeouts":%d,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"mean_us":%.1f,"max_us":%.0f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for ASCII


def one_header_script(path: Path, authorization: str) -> Path:
    """A wrk script sending the same ``Authorization`` header on every request."""
    path.write_text(f'wrk.headers["Authorization"] = {_lua_string(authorization)}\n{_DONE}')
    return path


def cycling_script(path: Path, header_file: Path, stop_after: int) -> Path:
    """A wrk script cycling through one Authorization header per line of ``header_file``.

    It stops its thread after ``stop_after`` responses and prints ``WRKSTOP`` so the
    caller can end wrk's timer (wrk otherwise sleeps out its whole ``-d``).
    """
    path.write_text(f"""
local reqs = {{}}
local i = 0
local seen = 0
local limit = {stop_after}
init = function(args)
  for line in io.lines({_lua_string(str(header_file))}) do
    reqs[#reqs + 1] = wrk.format(nil, nil, {{["Host"] = wrk.headers["Host"],
                                             ["Authorization"] = line}})
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
response = function(status, headers, body)
  seen = seen + 1
  if seen == limit then
    io.write("WRKSTOP\\n")
    io.flush()
    wrk.thread:stop()
  end
end
{_DONE}""")
    return path


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    duration_us: int
    bytes: int
    connect_errors: int
    read_errors: int
    write_errors: int
    non_2xx: int
    timeouts: int
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    max_us: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def errors(self) -> int:
        """Socket errors, timeouts and non-2xx answers together."""
        return (self.connect_errors + self.read_errors + self.write_errors + self.non_2xx
                + self.timeouts)

    def as_dict(self) -> dict[str, float]:
        """The raw figures plus requests/s, for the JSON results."""
        return {**asdict(self), "rps": round(self.rps, 1)}


def _parse(stdout: str, cmd: list[str]) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith("WRKJSON "):
            return WrkResult(**json.loads(line[len("WRKJSON "):]))
    raise BenchError(f"wrk printed no result ({' '.join(cmd)}):\n{stdout[-2000:]}")


def run_wrk(wrk: str, url: str, script: Path, *, connections: int, seconds: float,
            cores: str | None = HELPER_CORE, timeout_s: int = 5) -> WrkResult:
    """One bounded wrk run with one thread; returns its figures."""
    cmd = pinned([wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                  f"--timeout={timeout_s}s", "--latency", "-s", str(script), url], cores)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return _parse(out, cmd)


def run_wrk_until_stop(wrk: str, url: str, script: Path, *, connections: int,
                       max_seconds: int, cores: str | None = HELPER_CORE) -> WrkResult:
    """Run a :func:`cycling_script` until it has seen its count, then end wrk early."""
    cmd = pinned([wrk, "-t1", f"-c{connections}", f"-d{max_seconds}s", "--timeout=5s",
                  "--latency", "-s", str(script), url], cores)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("WRKSTOP"):
                proc.send_signal(signal.SIGINT)  # wrk's own handler: stop and report
        proc.wait(30)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return _parse("".join(lines), cmd)
