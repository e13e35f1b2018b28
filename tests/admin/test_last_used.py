"""last_used_at: coalesced in the gateway, written at the latest on flush or shutdown."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time

from gateway.proxy.lastused import FLUSH_INTERVAL
from tests.admin.conftest import StartGw, seed
from tests.admin.support import cli_env, run_cli


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


async def test_last_used_at_is_coalesced_and_written_by_the_shutdown_flush(start_gw: StartGw) -> None:
    """Many uses cause no per-request write; after SIGTERM another process reads a
    last_used_at within a second of the last use."""
    started = time.monotonic()
    gw = await start_gw()
    await seed(gw)
    await gw.member_tokens(True, actor="alice")
    used = await gw.create("member", "used", actor="bob")
    unused = await gw.create("member", "unused", actor="bob")

    for _ in range(20):
        assert (await gw.use(used)).status == 200
    last_use = time.time()

    listed = await gw.token(used["token"])
    if time.monotonic() - started < FLUSH_INTERVAL - 3:
        # The periodic flush has not run yet, so nothing has been written per request.
        assert listed["last_used_at"] is None

    assert gw.gp.stop(signal.SIGTERM) == 0
    out = run_cli("token", "list", "--store", gw.redis_url, "--json",
                  env=cli_env(gw.gp.env["TOKENGATE_MASTER_KEY"]))
    assert out.returncode == 0, out.stderr
    rows = {r["token"]: r for r in json.loads(out.stdout)}
    assert rows[unused["token"]]["last_used_at"] is None
    seen = _epoch(rows[used["token"]]["last_used_at"])
    assert last_use - 1 <= seen <= last_use + 0.01
    assert _epoch(rows[used["token"]]["created_at"]) <= seen


async def test_last_used_at_never_moves_backwards_across_processes(start_gw: StartGw) -> None:
    """Two gateways flushing the same token keep the newest use, whichever flushes last."""
    first = await start_gw()
    await seed(first)
    ws = await first.create("workspace", "shared", actor="alice")
    second = await start_gw(master_key=first.gp.env["TOKENGATE_MASTER_KEY"])
    assert (await first.use(ws)).status == 200
    between = time.time()
    assert (await second.use(ws)).status == 200
    newest = time.time()
    assert second.gp.stop() == 0
    assert first.gp.stop() == 0  # flushes its older use last
    out = run_cli("token", "list", "--store", first.redis_url, "--json",
                  env=cli_env(first.gp.env["TOKENGATE_MASTER_KEY"]))
    (row,) = json.loads(out.stdout)
    # The listing has millisecond precision (truncated).
    assert between - 0.001 <= _epoch(row["last_used_at"]) <= newest
