"""Legacy personal tokens: never created, imported for migration, refused after the cutoff."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.policy.permissions import PERSONAL_REFUSED
from tests.admin.conftest import StartGw, seed
from tests.admin.support import Gw, cli_env, run_cli

LEGACY_TOKEN = "a1b2c3d4e5f6a7b8c9d0"
LEGACY_SECRET = "Legacy-Secret_0123456789abcdef"


def _import(gw: Gw, user: str, token: str = LEGACY_TOKEN,
            secret: str = LEGACY_SECRET) -> dict[str, Any]:
    out = run_cli("token", "import-personal", "--token", token, "--secret", secret,
                  "--user", user, "--store", gw.redis_url, "--json",
                  env=cli_env(gw.gp.env["TOKENGATE_MASTER_KEY"]))
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


@pytest.mark.parametrize("actor", [None, "alice", "bob"])
async def test_the_api_refuses_to_create_personal_tokens(gw: Gw, actor: str | None) -> None:
    """Creating a personal token is 403 for everyone, with the detail naming the replacements."""
    await gw.member_tokens(True, actor="alice")
    reply = await gw.call("POST", "/tokens", {"type": "personal", "name": "old habits"},
                          actor=actor)
    assert reply.status == 403
    assert reply.detail == PERSONAL_REFUSED
    assert reply.detail.startswith("personal API tokens can no longer be created")
    assert "create a member or workspace" in reply.detail
    assert await gw.tokens() == []


async def test_an_imported_personal_token_acts_as_its_user_before_the_cutoff(
        start_gw: StartGw) -> None:
    """Before the cutoff an imported personal token authenticates as its user with the user's role."""
    gw = await start_gw(extra_env={"TOKENGATE_PERSONAL_TOKENS_CUTOFF": "2999-12-31"})
    await seed(gw)
    doc = _import(gw, "bob")
    assert (doc["token"], doc["type"], doc["owner"], doc["expires_at"]) \
        == (LEGACY_TOKEN, "personal", "bob", None)
    assert "secret" not in doc

    reply = await gw.proxy(LEGACY_TOKEN, LEGACY_SECRET)
    assert reply.status == 200
    assert gw.last_seen_header("X-Tokengate-User") == "bob"
    assert gw.last_seen_header("X-Tokengate-Role") == "member"
    assert gw.last_seen_header("X-Tokengate-Token-Type") == "personal"
    assert (await gw.proxy(LEGACY_TOKEN, LEGACY_SECRET[:-1] + "X")).status == 401

    admin_token = "f0e1d2c3b4a5968778695a4b"
    _import(gw, "alice", admin_token)
    assert (await gw.proxy(admin_token, LEGACY_SECRET)).status == 200
    assert gw.last_seen_header("X-Tokengate-Role") == "admin"

    # Admins see and revoke them like any other token; members see their own.
    assert [t["token"] for t in await gw.tokens("?type=personal", actor="bob")] == [LEGACY_TOKEN]
    assert len(await gw.tokens("?type=personal", actor="alice")) == 2
    await gw.ok("DELETE", f"/tokens/{LEGACY_TOKEN}", actor="alice")
    assert (await gw.proxy(LEGACY_TOKEN, LEGACY_SECRET)).status == 401


async def test_after_the_cutoff_a_personal_token_is_refused_naming_the_date_and_replacement(
        start_gw: StartGw) -> None:
    """After the cutoff a personal token gets 401 naming the deprecation date and the replacement."""
    gw = await start_gw(extra_env={"TOKENGATE_PERSONAL_TOKENS_CUTOFF": "2024-06-30"})
    await seed(gw)
    _import(gw, "bob")
    reply = await gw.proxy(LEGACY_TOKEN, LEGACY_SECRET)
    assert reply.status == 401
    assert "2024-06-30" in reply.detail
    assert "member or workspace API token" in reply.detail
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    assert gw.upstream.seen == []


async def test_the_default_cutoff_is_2025_02_28(gw: Gw) -> None:
    """With no cutoff configured, personal tokens are refused as deprecated on 2025-02-28."""
    _import(gw, "bob")
    reply = await gw.proxy(LEGACY_TOKEN, LEGACY_SECRET)
    assert reply.status == 401 and "2025-02-28" in reply.detail


async def test_import_refuses_unknown_users_and_malformed_tokens(gw: Gw) -> None:
    """Importing for an unknown user (exit 1), or a value that cannot be a personal
    token (a usage error, exit 2), fails cleanly."""
    env = cli_env(gw.gp.env["TOKENGATE_MASTER_KEY"])
    for args, needle, code in (
        (["--token", LEGACY_TOKEN, "--secret", LEGACY_SECRET, "--user", "nobody"], "nobody", 1),
        (["--token", "no", "--secret", LEGACY_SECRET, "--user", "bob"], "token", 2),
        (["--token", LEGACY_TOKEN, "--secret", "short", "--user", "bob"], "secret", 2),
    ):
        out = run_cli("token", "import-personal", *args, "--store", gw.redis_url, env=env)
        assert out.returncode == code, out
        assert needle in out.stderr and "Traceback" not in out.stderr
    assert await gw.tokens() == []
