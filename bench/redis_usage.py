"""Redis use per proxied request: which commands a client sent, which ran inside scripts.

A client-sent command is at most one round trip (pipelined commands share one; Redis
keeps no count of pipelines, so they are counted as commands, the stricter measure).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from load import run_wrk

if TYPE_CHECKING:
    import sides
    from measure import Bench

_MONITOR_LINE = re.compile(r'^\+?[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"')


def monitor_sample(bench: Bench, side: sides.Side, script: Path, seconds: int = 4
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


def merge_samples(samples: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several MONITOR samples as one: the requests and per-command counts added up."""
    merged: dict[str, Any] = {"requests": 0, "commands": {}}
    for sample in samples:
        merged["requests"] += sample.get("requests", 0)
        for cmd, per in sample.get("commands", {}).items():
            into = merged["commands"].setdefault(cmd, {"client": 0, "script": 0})
            into["client"] += per["client"]
            into["script"] += per["script"]
    return merged


# Commands Redis refuses inside a script: always sent by a client, sampled or not.
CLIENT_ONLY = frozenset({
    "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro", "script|load",
    "script|exists", "hello", "auth", "select", "multi", "exec", "discard", "watch",
    "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
    "client|setinfo", "client|setname", "info", "monitor",
})


def issuer(sample: Mapping[str, Any], command: str) -> str:
    """Who issued ``command`` in the MONITOR sample: client, script, or unclassified."""
    if command in CLIENT_ONLY:
        return "client"
    per: dict[str, int] | None = sample.get("commands", {}).get(command)
    if not per or not (per["client"] + per["script"]):
        return "unclassified"
    return "client" if per["client"] >= per["script"] else "script"


def per_request(deltas: Iterable[Mapping[str, int]], forwarded: int, sample: Mapping[str, Any]
                ) -> tuple[float, float, dict[str, dict[str, Any]]]:
    """Per forwarded request: commands sent, commands not classified, and every command.

    A command the MONITOR sample never saw (a periodic flush that fell outside it)
    is "unclassified": it may be sent or run inside a script, so it is reported
    apart, and the checks count it as sent (the conservative reading).
    """
    totals: dict[str, int] = {}
    for delta in deltas:
        for cmd, n in delta.items():
            totals[cmd] = totals.get(cmd, 0) + n
    rates = {cmd: n / forwarded for cmd, n in totals.items()} if forwarded else {}
    by = {cmd: issuer(sample, cmd) for cmd in rates}
    sent = sum((v for cmd, v in rates.items() if by[cmd] == "client"), 0.0)
    unclassified = sum((v for cmd, v in rates.items() if by[cmd] == "unclassified"), 0.0)
    breakdown = {cmd: {"per_request": round(v, 4), "issued_by": by[cmd]}
                 for cmd, v in sorted(rates.items(), key=lambda kv: -kv[1])}
    return sent, unclassified, breakdown
