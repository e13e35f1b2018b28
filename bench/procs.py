"""Processes the benchmark starts: ports, pinning, readiness, memory, clean shutdown.

Every process is started in its own session (its own process group), recorded
in a :class:`Processes` registry, and ended by that group id when the run
finishes, fails, or is interrupted. Nothing here ever signals a process the
benchmark did not start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# The machine this was written for has two cores: the process under test gets
# core 0 to itself; wrk, the upstream and Redis share core 1.
SERVER_CORE = "0"
HELPER_CORE = "1"
# Turned off (by run.py) on a machine with fewer than two usable cores.
PINNING = {"on": True}


class BenchError(Exception):
    """Something the benchmark needs is missing or did not start; the message says what."""


def require_tool(exe: str, package: str) -> str:
    """The path of ``exe``, or exit 2 with one line naming the Debian package to install."""
    path = shutil.which(exe) or next(
        (p for p in (f"/usr/sbin/{exe}", f"/usr/bin/{exe}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        print(f"bench: '{exe}' is missing; install it with: apt-get install -y {package}",
              file=sys.stderr)
        raise SystemExit(2)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_count() -> int:
    """How many CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def pinned(cmd: Sequence[str], cores: str | None) -> list[str]:
    """``cmd`` run under ``taskset -c cores`` (unchanged when ``cores`` is None)."""
    if cores is None or not PINNING["on"]:
        return list(cmd)
    return [require_tool("taskset", "util-linux"), "-c", cores, *cmd]


class Processes:
    """The registry of every long-running process this run started."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: Sequence[str], *, cores: str | None,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in its own process group, output to ``<logdir>/<name>.log``."""
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
        try:
            proc = subprocess.Popen(
                pinned(cmd, cores), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=cwd, start_new_session=True,
            )
        finally:
            log.close()
        self._procs.append((name, proc))
        return proc

    def named(self, name: str) -> subprocess.Popen[bytes]:
        """The running process started as ``name``."""
        return next(p for n, p in self._procs if n == name)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        """End ``proc`` and everything in its process group: SIGTERM, then SIGKILL."""
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        # Children that outlived their parent (e.g. worker processes) share the group.
        _signal_group(proc.pid, signal.SIGKILL)
        self._procs = [(n, p) for n, p in self._procs if p is not proc]

    def stop_all(self) -> None:
        """End every process still registered, newest first."""
        for _, proc in reversed(list(self._procs)):
            self.stop(proc)

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines a process wrote, for error messages."""
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, procs: Processes,
                  timeout: float = 20.0) -> None:
    """Wait until something accepts connections on ``port``; fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with status {proc.returncode}:\n"
                             f"{procs.log_tail(name)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{name} did not listen on port {port} within {timeout:.0f}s:\n"
                     f"{procs.log_tail(name)}")


def wait_for_http(url: str, proc: subprocess.Popen[bytes], name: str, procs: Processes,
                  timeout: float = 20.0) -> None:
    """Wait until ``url`` answers any HTTP status; fail if ``proc`` exits first."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with status {proc.returncode}:\n"
                             f"{procs.log_tail(name)}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{name} did not answer {url} within {timeout:.0f}s:\n{procs.log_tail(name)}")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    kids = _children()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(kids.get(p, []))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS from /proc), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int, *, skip_launcher: bool = True) -> tuple[int, list[tuple[int, str, int]]]:
    """Total RSS of ``pid``'s process tree and a per-process breakdown.

    ``taskset`` execs the command, so the started pid is the server itself.
    """
    parts = []
    for p in process_tree(pid):
        try:
            comm = Path(f"/proc/{p}/comm").read_text().strip()
        except OSError:
            continue
        if skip_launcher and comm == "taskset":
            continue
        parts.append((p, comm, rss_bytes(p)))
    return sum(r for _, _, r in parts), parts


class RedisStats:
    """A tiny RESP client for ``INFO commandstats`` on the private Redis."""

    def __init__(self, port: int) -> None:
        self.port = port

    def _call(self, line: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
            c.sendall(line + b"\r\n")
            buf = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if buf.startswith(b"$"):
                    head, _, rest = buf.partition(b"\r\n")
                    size = int(head[1:])
                    if size < 0 or len(rest) >= size + 2:
                        return rest[:max(size, 0)]
                elif buf.endswith(b"\r\n"):
                    return buf
            return buf

    def ping(self) -> bool:
        """True when the server answers PING."""
        try:
            return self._call(b"PING").startswith(b"+PONG")
        except OSError:
            return False

    def commandstats(self) -> dict[str, int]:
        """Calls per command since start, e.g. ``{"evalsha": 1234}``."""
        text = self._call(b"INFO commandstats").decode()
        calls: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("cmdstat_"):
                name, _, fields = line[len("cmdstat_"):].partition(":")
                for field in fields.split(","):
                    key, _, value = field.partition("=")
                    if key == "calls":
                        calls[name] = int(value)
        return calls


def commandstats_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands issued between two snapshots, less the one INFO the second snapshot made.

    Redis counts a command after running it, so the ``after`` snapshot includes the
    ``before`` snapshot's own INFO call and not its own.
    """
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    if "info" in delta:
        delta["info"] -= 1
    return {k: v for k, v in sorted(delta.items()) if v > 0}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by ``pid``'s process tree."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (``/proc/stat``, less idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
