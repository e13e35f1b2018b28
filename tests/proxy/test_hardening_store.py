"""Hostile bursts against a real gateway process: the store pool, the failure throttle, the memo."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections import Counter
from collections.abc import Callable

import aiohttp

from gateway.policy.credentials import new_secret, new_token
from gateway.policy.model import TokenType
from tests.admin.support import cli_env, run_cli
from tests.conftest import GatewayProcess, InProcess, RecordingUpstream, basic

GatewayFactory = Callable[..., GatewayProcess]

# The point of the burst tests is the store, not the throttles: budgets far above the burst.
ROOMY = """
[rate_limit]
limit = 100000
[rate_limit.auth_failures]
limit = 100000
"""


def make_tokens(gp: GatewayProcess, count: int) -> list[str]:
    """Create ``count`` workspace tokens through the admin API; their Basic headers."""
    headers = []
    for i in range(count):
        status, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace",
                                                                  "name": f"burst {i}"})
        assert status == 201, tok
        headers.append(basic(tok["token"], tok["secret"]))
    return headers


async def get(session: aiohttp.ClientSession, url: str, auth: str) -> int:
    """One proxied GET; its status."""
    async with session.get(url, headers={"Authorization": auth}) as r:
        await r.read()
        return r.status


def metric(gp: GatewayProcess, name: str, labels: str) -> float:
    """One sample from the admin listener's /metrics (0 if absent)."""
    with urllib.request.urlopen(gp.admin + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def test_unknown_token_burst_from_200_addresses_never_503s_and_a_valid_token_works(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """800 concurrent well-formed unknown tokens from 200 addresses get 401, never 503, and
    not-yet-cached valid tokens used during the burst all get 200."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text=ROOMY)
    valid = make_tokens(gp, 10)
    # Linux routes all of 127.0.0.0/8 to loopback: each session speaks from its own address.
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        local_addr=(f"127.0.0.{2 + i}", 0), limit=0)) for i in range(200)]
    legit = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        unknown = [get(sessions[i % 200], gp.proxy + "/api/default/x",
                       basic(new_token(TokenType.WORKSPACE), new_secret())) for i in range(800)]
        good = [get(legit, gp.proxy + "/api/default/x", valid[i % 10]) for i in range(20)]
        # The valid requests are spread through the burst, not sent before or after it.
        calls = unknown[:400] + good[:10] + unknown[400:] + good[10:]
        statuses = await asyncio.gather(*calls)
    finally:
        for s in [*sessions, legit]:
            await s.close()
    bad = Counter(statuses[:400] + statuses[410:810])
    assert set(bad) == {401}, bad
    assert statuses[400:410] + statuses[810:] == [200] * 20


async def test_cold_gateway_with_400_concurrent_valid_requests_never_503s(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """A freshly started gateway (empty cache) answers 400 concurrent valid requests with 200."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text=ROOMY)
    valid = make_tokens(gp, 4)  # created through the admin API: nothing is cached yet
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        statuses = await asyncio.gather(
            *(get(s, gp.proxy + "/api/default/x", valid[i % 4]) for i in range(400)))
    assert Counter(statuses) == {200: 400}


async def test_parallel_guesses_are_verified_at_most_budget_times_and_the_right_secret_is_blocked(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """90 concurrent wrong secrets for one token get at most the budget of verdicts (the rest
    429 unverified), and the right secret from that address is then refused with 429."""
    budget = 5
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text=f"""
[rate_limit.auth_failures]
limit = {budget}
window_seconds = 600
""")
    status, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "t"})
    assert status == 201
    right = basic(tok["token"], tok["secret"])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        wrong = [get(s, gp.proxy + "/x", basic(tok["token"], new_secret())) for _ in range(90)]
        statuses = await asyncio.gather(*wrong)
        after = await get(s, gp.proxy + "/x", right)
    counts = Counter(statuses)
    assert set(counts) <= {401, 429}, counts
    assert counts[401] <= budget
    # Every verification of a wrong secret is counted as a bad_secret failure: an attempt past
    # the budget must never have reached the secret check at all.
    assert metric(gp, "tokengate_auth_failures_total", 'reason="bad_secret"') <= budget
    assert after == 429
    assert upstream.seen == []


async def test_header_spellings_of_one_credential_share_one_memo_entry(
    make_gateway, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """Spelling variants of one valid header all succeed yet fill one memo entry, and failed
    attempts fill none."""
    g: InProcess = await make_gateway({"rate_limit": {"limit": 1000}})
    canonical = basic(g.token, g.secret)
    payload = canonical.split(" ", 1)[1]
    spellings = [f"{scheme}{' ' * spaces}{payload}"
                 for scheme in ("Basic", "basic", "BASIC", "bAsIc")
                 for spaces in (1, 2, 5)]
    async with aiohttp.ClientSession() as s:
        for auth in spellings:
            assert await get(s, g.proxy + "/x", auth) == 200
        for _ in range(5):
            assert await get(s, g.proxy + "/x", basic(g.token, new_secret())) == 401
        for auth in spellings:  # memo hits now
            assert await get(s, g.proxy + "/x", auth) == 200
    assert len(g.gw.authenticator._verified) == 1  # type: ignore[attr-defined]


async def test_a_token_tried_before_it_existed_works_once_imported(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """A token id remembered as unknown is forgotten on every replica when it is created (here
    by a legacy import from the CLI, another process), long before the negative TTL."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text="""
[personal_tokens]
cutoff = "2999-12-31"
[cache]
negative_ttl_seconds = 300
""")
    assert gp.admin_call("POST", "/admin/api/users", {"username": "bob", "role": "member"})[0] \
        == 201
    token, secret = "a1b2c3d4e5f6a7b8c9d0", "Legacy-Secret_0123456789abcdef"
    async with aiohttp.ClientSession() as s:
        assert await get(s, gp.proxy + "/x", basic(token, secret)) == 401  # now known unknown
        out = run_cli("token", "import-personal", "--token", token, "--secret", secret,
                      "--user", "bob", "--store", redis_url,
                      env=cli_env(gp.env["TOKENGATE_MASTER_KEY"]))
        assert out.returncode == 0, out.stderr
        # Pub/sub delivery is asynchronous: poll, within the 1 s invalidations promise.
        statuses = []
        for _ in range(50):
            statuses.append(await get(s, gp.proxy + "/x", basic(token, secret)))
            if statuses[-1] == 200:
                break
            await asyncio.sleep(0.02)
    assert statuses[-1] == 200, statuses


async def test_unknown_tokens_are_loaded_once_per_negative_ttl(
    make_gateway, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """Repeating one unknown token, or sending it 50 times at once, costs one store load."""
    g: InProcess = await make_gateway({"rate_limit": {"auth_failures": {"limit": 1000}}})
    registry = g.gw.metrics.registry  # type: ignore[attr-defined]

    def loads() -> float:
        value = registry.get_sample_value("tokengate_store_duration_seconds_count",
                                          {"operation": "load_credential"})
        return float(value or 0.0)

    before = loads()
    together = basic(new_token(TokenType.WORKSPACE), new_secret())
    repeated = basic(new_token(TokenType.WORKSPACE), new_secret())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        assert await asyncio.gather(*(get(s, g.proxy + "/x", together) for _ in range(50))) \
            == [401] * 50
        for _ in range(10):
            assert await get(s, g.proxy + "/x", repeated) == 401
    assert loads() - before == 2


async def test_ipv4_mapped_clients_have_their_own_failure_budgets(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """Behind a dual-stack load balancer IPv4 clients arrive as ``::ffff:a.b.c.d``; one using
    up its failure budget does not throttle another IPv4 client (no shared ``::/64`` bucket)."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text="""
[proxy]
trusted_proxies = ["127.0.0.0/8"]
[rate_limit.auth_failures]
limit = 3
""")
    status, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "t"})
    assert status == 201

    async def call(session: aiohttp.ClientSession, auth: str, client: str) -> int:
        async with session.get(gp.proxy + "/x", headers={"Authorization": auth,
                                                        "X-Forwarded-For": client}) as r:
            return r.status

    async with aiohttp.ClientSession() as s:
        guesses = [await call(s, basic(tok["token"], new_secret()), "::ffff:198.51.100.7")
                   for _ in range(4)]
        assert guesses == [401, 401, 401, 429]
        assert await call(s, basic(tok["token"], tok["secret"]), "::ffff:198.51.100.7") == 429
        assert await call(s, basic(tok["token"], tok["secret"]), "::ffff:198.51.100.8") == 200
