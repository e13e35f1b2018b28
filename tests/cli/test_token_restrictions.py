"""``token create`` restrictions, ``token roll`` and ``token rate-limit`` against the store."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from tests.cli.conftest import Cli
from tests.conftest import GatewayProcess, RecordingUpstream, basic


def _admin(cli: Cli) -> None:
    cli.json("user", "add", "alice", "--role", "admin")


def test_create_takes_scopes_networks_and_a_rate_limit(cli: Cli) -> None:
    """One-line grants, CIDRs and N/SECONDS become the API's restrictions, shown back."""
    _admin(cli)
    made = cli.json("token", "create", "--type", "workspace", "--name", "ci",
                    "--scope", "read-only", "--scope", "POST /api/{workspace}/reports/{r}/runs",
                    "--allow-network", "192.0.2.0/24", "--allow-network", "2001:db8::/32",
                    "--rate-limit", "100/60")
    assert made["scopes"] == ["read-only",
                              {"methods": ["POST"], "path": "/api/{workspace}/reports/{r}/runs"}]
    assert made["allowed_networks"] == ["192.0.2.0/24", "2001:db8::/32"]
    assert made["rate_limit"] == {"limit": 100, "window_seconds": 60}
    (listed,) = cli.json("token", "list")
    assert listed["scopes"] == made["scopes"]


def test_bad_restrictions_are_usage_errors_naming_the_field(cli: Cli) -> None:
    """A bad grant, CIDR or limit exits 2 with one line naming it, and creates nothing."""
    _admin(cli)
    base = ("token", "create", "--type", "workspace", "--name", "ci")
    assert "scopes[0].methods" in cli.fails(*base, "--scope", "get /x", code=2)
    assert "scopes" in cli.fails(*base, "--scope", "GET /a /b", code=2)
    assert "allowed_networks[0]" in cli.fails(*base, "--allow-network", "10.0.0.1/8", code=2)
    assert "rate_limit" in cli.fails(*base, "--rate-limit", "lots", code=2)
    assert "rate_limit.limit" in cli.fails(*base, "--rate-limit", "0/60", code=2)
    assert cli.json("token", "list") == []


async def test_roll_prints_the_new_secret_once_and_the_gateway_takes_both(
        cli: Cli, gateway_factory: Callable[..., GatewayProcess], upstream: RecordingUpstream,
) -> None:
    """`token roll` prints a new secret and when the old one stops; on a running gateway both
    work during the grace period; `--grace-seconds 0` ends the old one at once."""
    gp = gateway_factory(store_url=cli.store, upstream=upstream.url, master_key=cli.master_key)
    _admin(cli)
    made = cli.json("token", "create", "--type", "workspace", "--name", "ci")
    rolled = cli.json("token", "roll", made["token"], "--grace-seconds", "600")
    assert rolled["token"] == made["token"] and rolled["secret"] != made["secret"]
    assert rolled["previous_secret_expires_at"] is not None

    async def status(secret: str) -> int:
        auth = {"Authorization": basic(made["token"], secret)}
        async with aiohttp.ClientSession() as session, \
                session.get(gp.proxy + "/api/default/reports", headers=auth) as resp:
            return resp.status

    assert (await status(made["secret"]), await status(rolled["secret"])) == (200, 200)
    text = cli.run("token", "roll", made["token"], "--grace-seconds", "0")
    assert text.returncode == 0 and "only this once" in text.stdout
    newest = next(line.split()[-1] for line in text.stdout.splitlines()
                  if line.startswith("secret:"))
    assert (await status(rolled["secret"]), await status(newest)) == (401, 200)
    assert cli.run("token", "roll", made["token"], "--grace-seconds", "604801").returncode == 2
    assert "no such token" in cli.fails("token", "roll", "tgw_nothing")


def test_rate_limit_sets_and_removes_a_tokens_own_limit(cli: Cli) -> None:
    """`token rate-limit TOKEN N/SECONDS` sets it, `off` removes it; the audit records both."""
    _admin(cli)
    made = cli.json("token", "create", "--type", "workspace", "--name", "ci")
    assert cli.json("token", "rate-limit", made["token"], "5/10")["rate_limit"] == {
        "limit": 5, "window_seconds": 10}
    assert cli.json("token", "rate-limit", made["token"], "off")["rate_limit"] is None
    events = [e["event"] for e in cli.json("audit", "--limit", "2")]
    assert events == ["token.rate_limit_set", "token.rate_limit_set"]
    assert "rate_limit.window_seconds" in cli.fails("token", "rate-limit", made["token"],
                                                    "5/0", code=2)
