"""The secret is shown once: in the 201 create response and nowhere else, ever."""

from __future__ import annotations

import json

from tests.admin.support import Gw, cli_env, direct_lifecycle, run_cli


async def test_the_secret_and_its_hash_appear_only_in_the_create_response(gw: Gw) -> None:
    """After creation no listing, revoke answer, audit entry, log line, metric or CLI output
    contains the secret or its stored hash."""
    await gw.member_tokens(True, actor="alice")
    reply = await gw.call("POST", "/tokens", {"type": "member", "name": "mine"}, actor="bob")
    assert reply.status == 201
    created = reply.body
    secret, token = created["secret"], created["token"]
    assert reply.headers["Cache-Control"] == "no-store"

    async with direct_lifecycle(gw.gp, gw.redis_url) as lc:
        record = await lc.store.get_token(token)
    assert record is not None
    secret_hash = record.secret_hash
    assert secret not in secret_hash

    # Use it, fail with it, and do everything else that could echo it.
    assert (await gw.use(created)).status == 200
    wrong = secret[:-1] + ("x" if secret[-1] != "x" else "y")
    assert (await gw.proxy(token, wrong)).status == 401
    later = [
        await gw.call("GET", "/tokens", actor="bob"),
        await gw.call("GET", "/tokens", actor="alice"),
        await gw.call("GET", "/tokens"),
        await gw.call("GET", "/audit?limit=1000"),
        await gw.call("DELETE", f"/tokens/{token}", actor="bob"),
        await gw.call("DELETE", f"/tokens/{token}", actor="bob"),
        await gw.call("POST", "/tokens/revoke-all", {}, actor="alice"),
    ]
    assert (await gw.use(created)).status == 401
    async with gw.session.get(gw.gp.admin + "/metrics") as resp:
        metrics = await resp.text()
    cli = run_cli("token", "list", "--store", gw.redis_url, "--json",
                  env=cli_env(gw.gp.env["TOKENGATE_MASTER_KEY"]))
    assert cli.returncode == 0, cli.stderr
    assert token in cli.stdout

    gw.gp.stop()
    outputs = {
        **{f"admin call {i}": r.text for i, r in enumerate(later)},
        "metrics": metrics,
        "gateway log": gw.gp.logs(),
        "cli": cli.stdout + cli.stderr,
    }
    assert token in outputs["admin call 0"]
    for where, text in outputs.items():
        assert secret not in text, f"the secret leaked into the {where}"
        assert secret_hash not in text, f"the secret's hash leaked into the {where}"


async def test_a_token_created_from_the_cli_shows_its_secret_once(gw: Gw) -> None:
    """`tokengate token create` prints the secret; a later `token list` does not."""
    env = cli_env(gw.gp.env["TOKENGATE_MASTER_KEY"])
    made = run_cli("token", "create", "--type", "workspace", "--name", "cli", "--store",
                   gw.redis_url, "--json", env=env)
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)
    assert doc["secret"].startswith("tgs_")
    listed = run_cli("token", "list", "--store", gw.redis_url, "--json", env=env)
    assert doc["token"] in listed.stdout and doc["secret"] not in listed.stdout
    assert "secret" not in json.loads(listed.stdout)[0]
    assert (await gw.use(doc)).status == 200
