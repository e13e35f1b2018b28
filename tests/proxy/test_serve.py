"""`tokengate serve` and `tokengate demo` as real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import BOTH_CLIENTS, RecordingUpstream, basic, free_port


@BOTH_CLIENTS
async def test_serve_with_admin_api_end_to_end(
    gateway_factory, redis_url: str, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """Users and a workspace token made through the admin API authenticate a proxied request."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    status, body = gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    assert status == 201 and body["workspace"] == "default"
    status, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "ci"},
                                actor="ada")
    assert status == 201 and tok["secret"].startswith("tgs_")
    status, listing = gp.admin_call("GET", "/admin/api/tokens")
    assert status == 200 and [t["token"] for t in listing["tokens"]] == [tok["token"]]
    assert "secret" not in listing["tokens"][0]
    async with aiohttp.ClientSession() as s, s.get(
            gp.proxy + "/api/default/things",
            headers={"Authorization": basic(tok["token"], tok["secret"]),
                     "X-Tokengate-User": "mallory", "x_tokengate_role": "owner"}) as r:
        assert r.status == 200
    seen = {k.lower(): v for k, v in upstream.seen[-1].headers}
    assert seen["x-tokengate-user"] == "workspace:default"
    assert seen["x-tokengate-role"] == "admin"
    assert "authorization" not in seen and "x_tokengate_role" not in seen
    assert tok["secret"] not in gp.logs()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@BOTH_CLIENTS
@pytest.mark.slow
async def test_200_mb_bodies_stream_without_growing_memory(
    gateway_factory, redis_url: str, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """A 200 MB upload and a 200 MB download pass with < 50 MB resident growth."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "big"})
    auth = {"Authorization": basic(tok["token"], tok["secret"])}
    size = 200 * 1024 * 1024
    async with aiohttp.ClientSession() as s:
        async with s.get(gp.proxy + "/warmup", headers=auth) as r:
            assert r.status == 200
        before = _rss_kb(gp.proc.pid)
        peak = before

        async def body():  # type: ignore[no-untyped-def]
            nonlocal peak
            chunk = b"y" * (1024 * 1024)
            for i in range(size // len(chunk)):
                if i % 20 == 0:
                    peak = max(peak, _rss_kb(gp.proc.pid))
                yield chunk

        async with s.post(gp.proxy + "/upload", data=body(),
                          headers={**auth, "Content-Length": str(size)}) as r:
            assert r.status == 200
            assert (await r.json())["body_bytes"] == size
        received = 0
        async with s.get(gp.proxy + f"/download/{size}", headers=auth) as r:
            assert r.status == 200 and r.headers["Content-Length"] == str(size)
            async for chunk in r.content.iter_chunked(1024 * 1024):
                received += len(chunk)
                if received % (20 * 1024 * 1024) < len(chunk):
                    peak = max(peak, _rss_kb(gp.proc.pid))
        assert received == size
    peak = max(peak, _rss_kb(gp.proc.pid))
    assert (peak - before) < 50 * 1024, f"RSS grew {(peak - before) / 1024:.1f} MB"


def test_demo_prints_a_curl_line_that_works(tmp_path: Path) -> None:
    """`tokengate demo`'s printed curl line returns 200 with the identity; a wrong secret 401."""
    port, admin = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
    out = tmp_path / "demo.out"
    with out.open("wb") as out_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin}"],
            stdout=out_file, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 20
        while "curl -u" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.05)
        line = next(ln.strip() for ln in out.read_text().splitlines() if ln.strip().startswith("curl -u"))
        m = re.fullmatch(r"curl -u (\S+):(\S+) (\S+)", line)
        assert m is not None, line
        res = subprocess.run(["curl", "-s", "-i", "-u", f"{m[1]}:{m[2]}", m[3]],
                             capture_output=True, text=True, timeout=10, check=False)
        assert res.stdout.startswith("HTTP/1.1 200")
        assert '"X-Tokengate-User"' in res.stdout
        bad = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u",
                              f"{m[1]}:{m[2][:-1]}{'X' if m[2][-1] != 'X' else 'Y'}", m[3]], capture_output=True, text=True,
                             timeout=10, check=False)
        assert bad.stdout == "401"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert proc.returncode == 0


@BOTH_CLIENTS
async def test_sigterm_drains_and_exits_zero(
    gateway_factory, redis_url: str, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """SIGTERM turns /readyz to 503, stops accepting, lets an in-flight request finish,
    then exits 0."""
    import asyncio

    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    gp.admin_call("POST", "/admin/api/users", {"username": "ada", "role": "admin"})
    _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "t"})
    async with aiohttp.ClientSession() as s:
        request = asyncio.ensure_future(s.get(gp.proxy + "/slow/0.8", headers={
            "Authorization": basic(tok["token"], tok["secret"])}))
        await asyncio.sleep(0.3)
        gp.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        async with s.get(gp.admin + "/readyz") as ready:
            assert ready.status == 503  # draining: taken out of the load balancer
        async with aiohttp.ClientSession() as fresh:  # a new connection is not accepted
            with pytest.raises(aiohttp.ClientConnectionError):
                async with fresh.get(gp.proxy + "/x"):
                    pass
        r = await request
        assert r.status == 200
        r.release()
    assert await asyncio.get_running_loop().run_in_executor(None, gp.proc.wait, 15) == 0
