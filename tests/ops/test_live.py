"""Operations against a running gateway: scrape lint, log hygiene, SIGHUP, workers."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request

import aiohttp

from gateway.policy.credentials import new_secret
from tests.conftest import ADMIN_KEY, RecordingUpstream, basic
from tests.ops.support import run_promtool


def scrape(admin: str) -> bytes:
    with urllib.request.urlopen(admin + "/metrics", timeout=5) as r:
        return r.read()


async def _traffic(proxy: str, token: str, secret: str) -> None:
    async with aiohttp.ClientSession() as s:
        for auth in (basic(token, secret), basic(token, new_secret()), None):
            headers = {"Authorization": auth} if auth else {}
            async with s.get(proxy + "/api/default/x", headers=headers) as r:
                await r.read()


async def test_live_scrape_passes_promtool_and_counts_outcomes(
    gateway_factory, redis_url: str, upstream: RecordingUpstream, promtool: str  # type: ignore[no-untyped-def]
) -> None:
    """A live /metrics scrape lints clean and counts allowed and unauthenticated requests."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "m"})
    await _traffic(gp.proxy, tok["token"], tok["secret"])
    body = scrape(gp.admin)
    run_promtool(promtool, "check", "metrics", stdin=body)
    text = body.decode()
    assert 'tokengate_requests_total{outcome="allowed",route_class="default",token_type="workspace"} 1.0' in text
    assert 'tokengate_auth_failures_total{reason="bad_secret"} 1.0' in text
    assert tok["token"] not in text and "ada" not in text


async def test_logs_never_contain_secrets_or_authorization(
    gateway_factory, redis_url: str, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """Access and application logs carry the public token but never a secret or header value."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url,
                         extra_env={"TOKENGATE_LOG_LEVEL": "debug"})
    gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "m"})
    await _traffic(gp.proxy, tok["token"], tok["secret"])
    gp.admin_call("DELETE", f"/admin/api/tokens/{tok['token']}")
    await _traffic(gp.proxy, tok["token"], tok["secret"])
    assert gp.stop() == 0
    logs = gp.logs()
    access = [json.loads(line) for line in logs.splitlines()
              if line.startswith("{") and '"tokengate.access"' in line]
    assert len(access) == 6
    assert {a["status"] for a in access} == {200, 401}
    assert any(a["token"] == tok["token"] and a["outcome"] == "allowed" for a in access)
    header = basic(tok["token"], tok["secret"])
    for forbidden in (tok["secret"], header, header.split()[1], ADMIN_KEY,
                      gp.env["TOKENGATE_MASTER_KEY"]):
        assert forbidden not in logs


async def test_sighup_reloads_rules_and_keeps_old_on_error(
    gateway_factory, redis_url: str, upstream: RecordingUpstream, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    """SIGHUP swaps in new deny rules without a restart; an invalid file keeps the old ones."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text="")
    cfg = next(tmp_path.glob("tokengate-*.toml"))
    gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "m"})
    auth = {"Authorization": basic(tok["token"], tok["secret"])}

    async def status(path: str) -> int:
        async with aiohttp.ClientSession() as s:
            async with s.get(gp.proxy + path, headers=auth) as r:
                return r.status

    assert await status("/api/default/secret-stuff") == 200
    cfg.write_text('[[deny]]\nname = "no-secrets"\nmethods = ["GET"]\n'
                   'path = "/api/{workspace}/secret-stuff"\ntoken_types = ["workspace"]\n')
    gp.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        if await status("/api/default/secret-stuff") == 403:
            break
        await asyncio.sleep(0.02)
    assert await status("/api/default/secret-stuff") == 403
    cfg.write_text('[[deny]]\nname = "broken"\npath = "no-slash"\n')
    gp.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        if "config reload rejected" in gp.logs():
            break
        await asyncio.sleep(0.02)
    assert "config reload rejected" in gp.logs() and "broken" in gp.logs()
    assert await status("/api/default/secret-stuff") == 403
    assert gp.proc.poll() is None


async def test_two_workers_share_the_port_and_aggregate_metrics(
    gateway_factory, redis_url: str, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """With --workers 2 both workers serve and one scrape sums their counters."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, args=["--workers", "2"])
    gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "m"})
    n = 40
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(n):
            async with s.get(gp.proxy + "/x", headers={
                    "Authorization": basic(tok["token"], tok["secret"])}) as r:
                assert r.status in (200, 429)
    text = scrape(gp.admin).decode()
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("tokengate_requests_total{"))
    assert total == n
    assert gp.stop() == 0


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc)."""
    from pathlib import Path

    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


async def _until_listening(gp, pids: set[int]) -> None:  # type: ignore[no-untyped-def]
    """Wait until every worker in ``pids`` has logged that it listens.

    The gateway answers /healthz as soon as one worker is up; a test that
    kills a worker must first know that the other one listens too.
    """
    for _ in range(500):  # bounded: 10 s
        listening = set()
        for line in gp.logs().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("message") == "tokengate listening":
                listening.add(record.get("pid"))
        if pids <= listening:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"workers {pids - listening} never listened:\n{gp.logs()}")


async def test_a_crashed_worker_is_replaced(
    gateway_factory, redis_url: str, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """With --workers 2, a worker killed outright is replaced and the gateway keeps serving."""
    import os

    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, args=["--workers", "2"])
    workers = _children(gp.proc.pid)
    assert len(workers) == 2
    await _until_listening(gp, workers)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    for _ in range(150):  # the supervisor waits at least a second between spawns
        now = _children(gp.proc.pid)
        if len(now) == 2 and victim not in now:
            break
        await asyncio.sleep(0.02)
    assert len(now) == 2 and victim not in now
    await _until_listening(gp, now)
    gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "m"})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(10):
            async with s.get(gp.proxy + "/x", headers={
                    "Authorization": basic(tok["token"], tok["secret"])}) as r:
                assert r.status == 200
    assert "worker exited unexpectedly" in gp.logs()
    assert gp.stop() == 0
