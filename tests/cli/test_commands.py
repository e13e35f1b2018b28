"""The ``tokengate`` store commands: users, tokens, member tokens, audit (``--json``)."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from tests.admin.support import TOKEN_FIELDS
from tests.cli.conftest import Cli
from tests.conftest import GatewayProcess, RecordingUpstream, basic


def _users(cli: Cli) -> None:
    cli.json("user", "add", "alice", "--role", "admin")
    cli.json("user", "add", "bob", "--role", "member")
    cli.json("user", "add", "olga", "--role", "admin", "--workspace", "other")


def test_user_add_list_and_remove(cli: Cli) -> None:
    """`user add|list|remove` add to the default or named workspace, list, and remove."""
    added = cli.json("user", "add", "alice", "--role", "admin")
    assert {k: added[k] for k in ("username", "role", "workspace")} == {
        "username": "alice", "role": "admin", "workspace": "default"}
    assert cli.json("user", "add", "olga", "--role", "member", "--workspace", "other")[
        "workspace"] == "other"
    assert [u["username"] for u in cli.json("user", "list")] == ["alice", "olga"]
    assert [u["username"] for u in cli.json("user", "list", "--workspace", "other")] == ["olga"]
    assert cli.json("user", "remove", "olga") == {"username": "olga", "tokens_revoked": 0}
    assert [u["username"] for u in cli.json("user", "list")] == ["alice"]


def test_user_errors_are_one_line(cli: Cli) -> None:
    """A duplicate or unknown user fails with exit 1 and one line; a bad name or role
    is a usage error (exit 2)."""
    cli.json("user", "add", "alice", "--role", "admin")
    assert "already exists" in cli.fails("user", "add", "alice", "--role", "member")
    assert "no such user" in cli.fails("user", "remove", "nobody")
    bad = cli.run("user", "add", "bad name", "--role", "member")
    assert bad.returncode == 2 and "not a valid username" in bad.stderr
    assert cli.run("user", "add", "x", "--role", "owner").returncode == 2  # argparse choice


def test_token_create_list_revoke_and_revoke_all(cli: Cli) -> None:
    """`token create|list|revoke|revoke-all` work like the API, filters included."""
    _users(cli)
    ws = cli.json("token", "create", "--type", "workspace", "--name", "ci")
    assert set(ws) == TOKEN_FIELDS | {"secret"}
    assert (ws["workspace"], ws["created_by"], ws["owner"]) == (
        "default", "operator", "workspace:default")
    other = cli.json("token", "create", "--type", "workspace", "--name", "theirs",
                     "--workspace", "other", "--expires-in-days", "10")
    assert other["workspace"] == "other"

    listed = cli.json("token", "list")
    assert [t["token"] for t in listed] == [ws["token"], other["token"]]
    assert all(set(t) == TOKEN_FIELDS for t in listed)
    assert [t["token"] for t in cli.json("token", "list", "--workspace", "other")] \
        == [other["token"]]

    revoked = cli.json("token", "revoke", ws["token"])
    assert revoked["status"] == "revoked"
    assert cli.json("token", "revoke", ws["token"]) == revoked
    assert [t["token"] for t in cli.json("token", "list", "--status", "revoked")] == [ws["token"]]
    assert "no such token" in cli.fails("token", "revoke", "tgw_unknown")

    assert cli.json("token", "revoke-all", "--workspace", "other") == {"revoked": 1}
    assert cli.json("token", "list", "--status", "active") == []


def test_member_tokens_enable_disable_and_member_token_create(cli: Cli) -> None:
    """`member-tokens enable|disable` switch the feature that `token create --type member` needs."""
    _users(cli)
    refused = cli.fails("token", "create", "--type", "member", "--name", "m", "--actor", "bob")
    assert "an admin must enable member tokens" in refused
    assert cli.json("member-tokens", "enable")["member_tokens"] is True
    made = cli.json("token", "create", "--type", "member", "--name", "m", "--actor", "bob")
    assert (made["owner"], made["created_by"], made["type"]) == ("bob", "bob", "member")
    assert "X-Tokengate-Actor" in cli.fails("token", "create", "--type", "member", "--name", "m")
    assert cli.json("member-tokens", "enable", "--workspace", "other")["member_tokens"] is True
    assert cli.json("member-tokens", "disable")["member_tokens"] is False

    assert [t["token"] for t in cli.json("token", "list", "--type", "member")] == [made["token"]]
    assert cli.json("token", "revoke-all", "--type", "member") == {"revoked": 1}
    assert cli.json("token", "revoke-all", "--type", "workspace") == {"revoked": 0}


def test_import_personal(cli: Cli) -> None:
    """`token import-personal` stores a legacy token for its user, without echoing the secret."""
    _users(cli)
    out = cli.run("token", "import-personal", "--token", "abcd1234efgh5678", "--secret",
                  "legacy-secret-0123456789", "--user", "bob", "--json")
    assert out.returncode == 0, out.stderr
    assert "legacy-secret-0123456789" not in out.stdout
    listed = cli.json("token", "list", "--type", "personal")
    assert [(t["token"], t["owner"], t["expires_at"]) for t in listed] == [
        ("abcd1234efgh5678", "bob", None)]
    assert "already exists" in cli.fails("token", "import-personal", "--token", "abcd1234efgh5678",
                                         "--secret", "legacy-secret-0123456789", "--user", "bob")


def test_audit(cli: Cli) -> None:
    """`audit` lists the newest events first with time, actor and subject."""
    _users(cli)
    made = cli.json("token", "create", "--type", "workspace", "--name", "ci")
    cli.json("token", "revoke", made["token"])
    events = cli.json("audit", "--limit", "2")
    assert [(e["event"], e["actor"], e["subject"]) for e in events] == [
        ("token.revoked", "operator", made["token"]),
        ("token.created", "operator", made["token"]),
    ]
    assert all(e["at"].endswith("Z") for e in events)
    assert [e["subject"] for e in cli.json("audit", "--workspace", "other")] == ["olga"]


def test_text_output_is_readable_and_shows_the_secret_only_at_creation(cli: Cli) -> None:
    """Without --json, create prints the secret with a warning; list prints a table without it."""
    _users(cli)
    out = cli.run("token", "create", "--type", "workspace", "--name", "ci")
    assert out.returncode == 0
    secret = next(line.split()[-1] for line in out.stdout.splitlines()
                  if line.startswith("secret:"))
    assert "only this once" in out.stdout
    table = cli.run("token", "list")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["token", "type", "name"]
    assert secret not in table.stdout
    assert cli.run("user", "list").stdout.splitlines()[0].split()[0] == "username"


def test_store_commands_refuse_an_unreachable_store(cli: Cli) -> None:
    """With the store down, a command exits 1 saying so, without a traceback."""
    down = Cli("redis://127.0.0.1:1/0", cli.master_key)
    assert "store is unavailable" in down.fails("user", "list")


async def test_cli_changes_take_effect_on_a_running_gateway(
        cli: Cli, gateway_factory: Callable[..., GatewayProcess], upstream: RecordingUpstream,
) -> None:
    """A token made with the CLI works on a running gateway; a CLI revoke stops it at once."""
    gp = gateway_factory(store_url=cli.store, upstream=upstream.url, master_key=cli.master_key)
    _users(cli)
    made = cli.json("token", "create", "--type", "workspace", "--name", "ci")
    auth = {"Authorization": basic(made["token"], made["secret"])}
    async with aiohttp.ClientSession() as session:
        async with session.get(gp.proxy + "/api/default/reports", headers=auth) as resp:
            assert resp.status == 200
        cli.json("token", "revoke", made["token"])
        async with session.get(gp.proxy + "/api/default/reports", headers=auth) as resp:
            assert resp.status == 401
