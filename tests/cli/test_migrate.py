"""``tokengate store migrate``: a store populated in key layout 1 (by the old code's
steps, ``legacy_store.py``) works in full through a real gateway afterwards, a
second run changes nothing, and a run stopped at any step is finished by the next."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import pytest
import redis

from gateway.config import load_settings
from gateway.keycheck import check_master_key
from gateway.keys import Keys, generate_master_key, parse_master_key
from gateway.lifecycle import Lifecycle
from gateway.policy.model import AuditEvent, Role, TokenType
from gateway.policy.permissions import Actor
from gateway.store.layout import LegacyLayout, StoreMismatch
from gateway.store.migrate import Migrator
from gateway.store.redis import RedisStore
from gateway.trusted.service import TrustedAuth
from tests.admin.support import cli_env, run_cli
from tests.cli.legacy_store import LegacyStore
from tests.conftest import RecordingUpstream, basic

OLD_EVENT_AT = 1_700_000_000.0


@dataclass
class Populated:
    """What the layout-1 store holds that the tests check after migrating."""

    master_key: str
    workspace_token: tuple[str, str]
    member_token: tuple[str, str]
    revoked_token: tuple[str, str]
    secret_key: str


async def populate(url: str) -> Populated:
    """A layout-1 store as a deployment holds it: users in two workspaces, workspace and
    member tokens (one revoked), member tokens switched on, a trusted-auth key with org
    id 7, audit events (one in the single list of older versions), a half-made user."""
    master = generate_master_key()
    keys = Keys.from_master(parse_master_key(master))
    settings = load_settings(environ={}, overrides={"store": {"url": url}})
    legacy = LegacyStore(url)
    try:
        await check_master_key(legacy, keys)  # type: ignore[arg-type]
        lc = Lifecycle(legacy, keys, settings)  # type: ignore[arg-type]
        op = Actor.operator()
        await lc.add_user(op, "ada", Role.ADMIN, None)
        mia = await lc.add_user(op, "mia", Role.MEMBER, None)
        await lc.add_user(op, "olga", Role.ADMIN, "other")
        await lc.set_member_tokens(op, True, None)
        ci = await lc.create_token(op, TokenType.WORKSPACE, "ci")
        laptop = await lc.create_token(Actor.of(mia), TokenType.MEMBER, "laptop")
        old = await lc.create_token(op, TokenType.WORKSPACE, "old")
        await lc.revoke_token(op, old.record.token)
        status = await TrustedAuth(lifecycle=lc).enable(op, None, org_id=7)
        await legacy.append_single_list_event(AuditEvent(
            OLD_EVENT_AT, "user.added", "operator", "ada-before", "default", {}))
        await legacy.add_half_made_user("ghost", OLD_EVENT_AT)
    finally:
        await legacy.close()
    assert status.secret_key is not None
    return Populated(master, (ci.record.token, ci.secret), (laptop.record.token, laptop.secret),
                     (old.record.token, old.secret), status.secret_key)


def migrate(url: str, *extra: str) -> str:
    """Run ``tokengate store migrate``; insist on exit 0 and return its one line."""
    out = run_cli("store", "migrate", "--store", url, *extra, env=cli_env(None))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return out.stdout.strip()


def legacy_keys(url: str) -> list[bytes]:
    """Layout-1 keys still in the store."""
    client = redis.Redis.from_url(url)
    try:
        return [k for pattern in LegacyLayout().patterns() for k in client.scan_iter(pattern)]
    finally:
        client.close()


async def test_migrated_store_works_in_full_through_a_gateway(
        redis_url: str, gateway_factory, upstream: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """After the migration every token, user, setting, trusted-auth key (by org id too)
    and audit event works through a real gateway; layout-1 keys are gone; a second run
    is a no-op."""
    data = await populate(redis_url)
    first = migrate(redis_url)
    assert first.startswith("migrated key layout 1 to 2: 3 user(s), 3 token(s), "
                            "1 workspace setting(s), 1 trusted-auth key(s) (1 org id(s))"), first
    assert "skipped 1 broken record(s)" in first
    assert legacy_keys(redis_url) == []
    assert migrate(redis_url) == "the store already has key layout 2: nothing to migrate"

    gp = gateway_factory(store_url=redis_url, upstream=upstream.url,
                         master_key=data.master_key)
    status, users = gp.admin_call("GET", "/admin/api/users")
    assert status == 200
    assert sorted((u["username"], u["workspace"]) for u in users["users"]) == [
        ("ada", "default"), ("mia", "default"), ("olga", "other")]
    _, tokens = gp.admin_call("GET", "/admin/api/tokens")
    assert sorted((t["name"], t["status"]) for t in tokens["tokens"]) == [
        ("ci", "active"), ("laptop", "active"), ("old", "revoked")]
    _, settings = gp.admin_call("GET", "/admin/api/settings")
    assert settings["member_tokens"] is True
    _, audit = gp.admin_call("GET", "/admin/api/audit?limit=100")
    subjects = [e["subject"] for e in audit["events"]]
    assert "ada-before" in subjects and subjects[-1] == "ada-before"  # merged by time
    assert {"mia", "olga"} <= set(subjects)

    async with aiohttp.ClientSession() as s:
        for (token, secret), want in ((data.workspace_token, 200), (data.member_token, 200),
                                      (data.revoked_token, 401)):
            async with s.get(gp.proxy + "/api/default/reports",
                             headers={"Authorization": basic(token, secret)}) as r:
                assert r.status == want, (token, await r.text())
        async with s.post(gp.proxy + "/api/rest/2.0/auth/token/full", json={
                "username": "ada", "secret_key": data.secret_key, "org_id": 7}) as r:
            assert r.status == 200, await r.text()
            bearer = (await r.json())["token"]
        async with s.get(gp.proxy + "/api/rest/2.0/metadata/search",
                         headers={"Authorization": f"Bearer {bearer}"}) as r:
            assert r.status == 200, await r.text()
    # A user removed now is removed everywhere (the directory entry went with it).
    assert gp.admin_call("DELETE", "/admin/api/users/mia")[0] == 200
    assert gp.admin_call("POST", "/admin/api/users",
                         {"username": "mia", "role": "member", "workspace": "other"})[0] == 201


def test_serve_and_store_commands_refuse_a_layout_1_store(
        redis_url: str, gateway_factory, upstream: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """Before the migration `serve` and every store command stop with one line naming
    `tokengate store migrate` (exit 2), and write nothing."""
    data = asyncio.run(populate(redis_url))
    with pytest.raises(RuntimeError, match=r"tokengate store migrate"):
        gateway_factory(store_url=redis_url, upstream=upstream.url, master_key=data.master_key)
    out = run_cli("user", "list", "--store", redis_url, env=cli_env(data.master_key))
    assert out.returncode == 2
    assert "key layout 1" in out.stderr and "tokengate store migrate" in out.stderr
    assert redis.Redis.from_url(redis_url).exists("tg:layout") == 0


def test_migrate_waits_for_the_old_gateways_to_stop(redis_url: str) -> None:
    """While a process is subscribed to invalidations (an old gateway) the migration
    refuses to start; --force runs it anyway."""
    asyncio.run(populate(redis_url))
    client = redis.Redis.from_url(redis_url)
    listener = client.pubsub()
    listener.subscribe("tg:invalidate")
    try:
        out = run_cli("store", "migrate", "--store", redis_url, env=cli_env(None))
        assert out.returncode == 2
        assert "stop every gateway" in out.stderr and "Traceback" not in out.stderr
        assert legacy_keys(redis_url) != []
        assert migrate(redis_url, "--force").startswith("migrated key layout 1 to 2")
    finally:
        listener.close()
        client.close()


class Stop(Exception):
    """The injected crash."""


@pytest.mark.parametrize("crash_in", ["_copy_tokens", "_copy_audit", "_clean"])
async def test_a_run_stopped_anywhere_is_finished_by_the_next(
        redis_url: str, crash_in: str) -> None:
    """A migration that dies during the copy leaves the store refused (layout 1 intact);
    one that dies after the switch leaves it usable; either way a second run completes
    it, and the result is the same as one uninterrupted run."""
    data = await populate(redis_url)

    class Crashing(Migrator):
        pass

    async def crash(*args: object, **kwargs: object) -> None:
        raise Stop(crash_in)

    setattr(Crashing, crash_in, crash)
    store = RedisStore(redis_url)
    try:
        with pytest.raises(Stop):
            await Crashing(store).run()
        if crash_in == "_clean":
            await store.check_layout()  # switched: usable already
        else:
            with pytest.raises(StoreMismatch, match="tokengate store migrate"):
                await store.check_layout()
        report = await Migrator(store).run()
        assert report.removed > 0
        await store.check_layout()
        assert legacy_keys(redis_url) == []
        assert [u.username for u in await store.list_users(None)] == ["ada", "mia", "olga"]
        record = await store.get_token(data.member_token[0])
        assert record is not None and record.owner == "mia"
        cred = await store.load_credential(data.workspace_token[0])
        assert cred is not None and cred.settings.member_tokens is True
        key = await store.trusted_key_for_org_id(7)
        assert key is not None and key.workspace == "default"
        events = await store.list_audit(workspace="default", limit=100)
        assert [e.subject for e in events].count("ada-before") == 1
    finally:
        await store.close()


async def test_an_empty_store_is_given_layout_2(redis_url: str) -> None:
    """Migrating a store that holds nothing just records layout 2."""
    assert migrate(redis_url) == "the store was empty; it now has key layout 2"
    assert redis.Redis.from_url(redis_url).get("tg:layout") == b"2"
