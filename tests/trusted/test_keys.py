"""Trusted-auth keys: the admin API, who may use it, storage at rest, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis.asyncio as aioredis

from gateway.keys import generate_master_key
from tests.trusted.conftest import StartTrusted, Trusted

PATH = "/workspaces/{}/trusted-auth"


async def test_get_reads_the_key_back_and_put_keeps_it(ta: Trusted) -> None:
    """GET returns the key PUT created; a second PUT while enabled keeps the same key."""
    before = await ta.admin("GET", PATH.format("default"))
    assert before.status == 200 and before.body["enabled"] is False
    key = await ta.enable()
    shown = await ta.admin("GET", PATH.format("default"))
    assert shown.body["enabled"] is True and shown.body["secret_key"] == key
    assert shown.body["enabled_by"] == "operator" and shown.headers["Cache-Control"] == "no-store"
    again = await ta.admin("PUT", PATH.format("default"))
    assert again.status == 200 and again.body["secret_key"] == key
    assert len(await ta.audit("trusted_auth.enabled")) == 1


async def test_only_admins_of_the_workspace_manage_its_key(ta: Trusted) -> None:
    """An admin manages their own workspace's key; members and other admins are refused."""
    assert (await ta.admin("PUT", PATH.format("default"), actor="bob")).status == 403
    assert (await ta.admin("PUT", PATH.format("default"), actor="olga")).status == 403
    key = await ta.enable(actor="alice")
    assert (await ta.admin("GET", PATH.format("default"), actor="bob")).status == 403
    assert (await ta.admin("GET", PATH.format("default"), actor="olga")).status == 403
    assert (await ta.admin("DELETE", PATH.format("default"), actor="olga")).status == 403
    assert (await ta.admin("GET", PATH.format("default"), actor="alice")).body["secret_key"] == key
    (event,) = await ta.audit("trusted_auth.enabled")
    assert event["actor"] == "alice" and event["workspace"] == "default"
    assert key not in json.dumps(event)
    assert (await ta.admin("DELETE", PATH.format("default"), actor="alice")).status == 200
    assert (await ta.audit("trusted_auth.disabled"))[0]["actor"] == "alice"


async def test_admin_api_needs_the_admin_key_and_a_valid_workspace(ta: Trusted) -> None:
    """Without the admin key the routes are 401; a malformed workspace name is 422."""
    async with ta.session.get(ta.gp.admin + "/admin/api" + PATH.format("default")) as resp:
        assert resp.status == 401
    assert (await ta.admin("PUT", PATH.format("bad%20name"))).status == 422


async def test_key_is_stored_only_encrypted(ta: Trusted, redis_url: str) -> None:
    """No Redis value holds the key in clear, and no key name contains a bearer."""
    key = await ta.enable()
    token = await ta.bearer(key)
    client = aioredis.Redis.from_url(redis_url)
    try:
        dump: list[str] = []
        async for name in client.scan_iter("*"):
            dump.append(name.decode())
            if await client.type(name) == b"hash":
                values = (await client.hgetall(name)).values()
                dump += [v.decode(errors="replace") if isinstance(v, bytes) else v
                         for v in values]
        bearer_keys = [n async for n in client.scan_iter("tg:tb:*")]
        assert len(bearer_keys) == 1
        assert 0 < await client.pttl(bearer_keys[0]) <= 300_000
    finally:
        await client.aclose()
    text = "\n".join(dump)
    assert key not in text and token not in text


def _cli(*args: str, master_key: str, store: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
    env["TOKENGATE_MASTER_KEY"] = master_key
    return subprocess.run([sys.executable, "-m", "gateway", "trusted-auth", *args,
                           "--store", store], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


async def test_cli_enables_shows_and_disables(start_trusted: StartTrusted, redis_url: str) -> None:
    """A key the CLI enables mints tokens on a gateway sharing the store and master key."""
    master = generate_master_key()
    ta = await start_trusted(master_key=master)
    enabled = _cli("enable", "--workspace", "default", "--json", master_key=master,
                   store=redis_url)
    assert enabled.returncode == 0, enabled.stderr
    key = json.loads(enabled.stdout)["secret_key"]
    shown = _cli("show", "--workspace", "default", master_key=master, store=redis_url)
    assert shown.returncode == 0 and f"secret_key: {key}" in shown.stdout
    token = await ta.bearer(key)
    assert (await ta.call(token)).status == 200
    disabled = _cli("disable", "--workspace", "default", "--json", master_key=master,
                    store=redis_url)
    assert disabled.returncode == 0 and json.loads(disabled.stdout)["enabled"] is False
    assert (await ta.call(token)).status == 401
    assert (await ta.audit("trusted_auth.disabled"))[0]["actor"] == "operator"


async def test_key_from_another_master_key_cannot_be_read(
        start_trusted: StartTrusted, redis_url: str) -> None:
    """A key encrypted under one master key is unreadable under another: 500, never a match."""
    enabled = _cli("enable", "--workspace", "default", "--json",
                   master_key=generate_master_key(), store=redis_url)
    key = json.loads(enabled.stdout)["secret_key"]
    # As an operator who replaced the master key on purpose would: forget the
    # store's key check value, else the gateway refuses to start (exit 2).
    check = aioredis.Redis.from_url(redis_url)
    await check.delete("tg:keycheck")
    await check.aclose()
    ta = await start_trusted()
    assert (await ta.admin("GET", PATH.format("default"))).status == 500
    reply = await ta.mint(key)
    assert reply.status == 500 and key not in reply.text
