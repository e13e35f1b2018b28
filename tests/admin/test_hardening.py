"""The admin listener under hostile traffic, against a real gateway process.

Forged ``Host`` headers (DNS rebinding), admin-key guessing (sequential and
a parallel burst), the audit of refused keys, and probing for another
workspace's users.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from gateway.policy.model import NO_WORKSPACE
from tests.admin.conftest import StartGw, seed
from tests.admin.support import API, NO_BODY, Gw, direct_lifecycle
from tests.conftest import ADMIN_KEY

# The admin key budget the throttle tests run with (the default is 10 per 60 s).
BUDGET = "[admin.key_failures]\nlimit = 3\nwindow_seconds = 60\n"
ATTACKER = "127.0.0.2"  # a second loopback address: the attacker's budget is not ours
OPEN_PATHS = ["/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/admin/",
              API + "/openapi.json"]


def _port(gw: Gw) -> str:
    return gw.gp.admin.rsplit(":", 1)[1]


async def _get(gw: Gw, path: str, host: str, session: aiohttp.ClientSession | None = None,
               **headers: str) -> tuple[int, dict[str, str], str]:
    """GET ``path`` on the admin listener with this ``Host`` header."""
    s = session or gw.session
    async with s.get(gw.gp.admin + path, headers={"Host": host, **headers}) as r:
        return r.status, dict(r.headers), await r.text()


@pytest.fixture
async def gw(start_gw: StartGw) -> Gw:
    """A seeded gateway with a small admin-key budget."""
    g = await start_gw(config_text=BUDGET)
    await seed(g)
    return g


@pytest.fixture
async def attacker() -> Any:
    """An HTTP client whose connections come from 127.0.0.2."""
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(ATTACKER, 0), force_close=True)) as s:
        yield s


# --- Host allow-list ----------------------------------------------------------


async def test_a_rebound_host_name_gets_421_on_every_open_endpoint(gw: Gw) -> None:
    """A page that rebinds evil.example to 127.0.0.1 cannot read /metrics, JWKS, health or the page."""
    port = _port(gw)
    for path in OPEN_PATHS:
        status, headers, body = await _get(gw, path, f"evil.example:{port}")
        assert status == 421, (path, status)
        assert headers["Content-Type"].startswith("application/problem+json")
        assert "tokengate_" not in body and "keys" not in body
    # The admin API too, even with the right key: the browser could not send it anyway.
    status, _, _ = await _get(gw, API + "/users", "evil.example",
                              Authorization=f"Bearer {ADMIN_KEY}")
    assert status == 421


async def test_loopback_names_and_the_listen_address_are_answered(gw: Gw) -> None:
    """localhost, 127.0.0.1 and [::1] (any port, any case, with a final dot) reach the listener."""
    port = _port(gw)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]:9999", "LOCALHOST", "localhost."):
        for path in OPEN_PATHS:
            status, _, _ = await _get(gw, path, host)
            assert status == 200, (host, path, status)


async def test_configured_host_names_are_answered_and_others_not(start_gw: StartGw) -> None:
    """admin.allowed_hosts adds names (e.g. a compose service name); unlisted names stay 421."""
    gw = await start_gw(extra_env={"TOKENGATE_ADMIN_ALLOWED_HOSTS": "tokengate, admin.internal"})
    assert (await _get(gw, "/metrics", "tokengate:9090"))[0] == 200
    assert (await _get(gw, "/metrics", "admin.internal"))[0] == 200
    assert (await _get(gw, "/metrics", "admin.internal.evil.example"))[0] == 421
    assert (await _get(gw, "/metrics", "10.0.0.7:9090"))[0] == 421  # not a wildcard listener


@pytest.mark.parametrize(("listen", "allowed", "host", "answered"), [
    ("127.0.0.1", [], None, True),                   # no Host header: not a browser
    ("127.0.0.1", [], "localhost:9090", True),
    ("127.0.0.1", [], "127.0.0.9", True),            # any loopback address
    ("127.0.0.1", [], "[::1]:1", True),
    ("127.0.0.1", [], "", False),
    ("127.0.0.1", [], "evil.example", False),
    ("127.0.0.1", [], "localhost.evil.example", False),
    ("127.0.0.1", [], "10.0.0.7:9090", False),
    ("10.0.0.7", [], "10.0.0.7:9090", True),         # the listen address
    ("admin.internal", [], "ADMIN.internal.:9090", True),
    ("0.0.0.0", [], "10.1.2.3:9090", True),          # kubelet probe, Prometheus by pod IP
    ("0.0.0.0", [], "[fd00::7]:9090", True),
    ("0.0.0.0", [], "tokengate:9090", False),        # a name must be listed
    ("0.0.0.0", ["tokengate"], "tokengate:9090", True),
    ("[::]", [], "[2001:db8::1]:9090", True),
    ("127.0.0.1", ["*"], "anything.example", True),  # the check switched off
])
def test_host_allow_list(listen: str, allowed: list[str], host: str | None, answered: bool) -> None:
    """Loopback, the listen host, listed names, and IP literals on a wildcard listener are answered."""
    from gateway.policy.hosts import HostAllowList

    assert HostAllowList.build(listen, allowed).allows(host) is answered


# --- admin-key guessing -------------------------------------------------------


async def _api(session: aiohttp.ClientSession, gw: Gw, key: str | None) -> tuple[int, dict[str, str]]:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with session.get(gw.gp.admin + API + "/users", headers=headers) as r:
        await r.read()
        return r.status, dict(r.headers)


async def test_guessing_the_admin_key_is_throttled_and_the_right_key_then_gets_no_verdict(
    gw: Gw, attacker: aiohttp.ClientSession,
) -> None:
    """After `limit` wrong keys an address gets 429 + Retry-After, even for the right key (no oracle)."""
    statuses = [(await _api(attacker, gw, f"guess-{i}"))[0] for i in range(3)]
    assert statuses == [401, 401, 401]
    status, headers = await _api(attacker, gw, "guess-3")
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
    assert (await _api(attacker, gw, ADMIN_KEY))[0] == 429
    # Another address keeps its own budget: the app's backend is not locked out.
    assert (await _api(gw.session, gw, ADMIN_KEY))[0] == 200


async def test_a_parallel_burst_of_guesses_gets_at_most_limit_verdicts(
    gw: Gw, attacker: aiohttp.ClientSession,
) -> None:
    """Attempts are counted before the key is compared, so 30 parallel guesses get 3 verdicts, 27 429s."""
    results = await asyncio.gather(*(_api(attacker, gw, f"burst-{i}") for i in range(30)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [401] * 3 + [429] * 27


async def test_the_right_key_and_bare_requests_use_up_no_budget(
    gw: Gw, attacker: aiohttp.ClientSession,
) -> None:
    """A right key gives its slot back and a request without a key is no guess: neither throttles."""
    for _ in range(8):
        assert (await _api(attacker, gw, ADMIN_KEY))[0] == 200
        assert (await _api(attacker, gw, None))[0] == 401
    # The full budget is still there.
    assert [(await _api(attacker, gw, f"late-{i}"))[0] for i in range(4)] == [401, 401, 401, 429]


async def test_refused_admin_keys_are_audited_once_per_address_in_the_security_list(
    gw: Gw, attacker: aiohttp.ClientSession,
) -> None:
    """Many refusals from one address make one admin.key_refused event, in no workspace's log."""
    await asyncio.gather(*(_api(attacker, gw, f"audit-{i}") for i in range(12)))
    async with direct_lifecycle(gw.gp, gw.redis_url) as lc:
        security = await lc.store.list_audit(workspace=NO_WORKSPACE, limit=100)
    refused = [e for e in security if e.event == "admin.key_refused"]
    assert len(refused) == 1
    assert refused[0].detail["client"] == ATTACKER and refused[0].workspace == NO_WORKSPACE
    assert ADMIN_KEY not in str(refused[0].to_json())
    # A workspace admin's audit log shows none of it.
    events = (await gw.ok("GET", "/audit", actor="alice"))["events"]
    assert not [e for e in events if e["event"] == "admin.key_refused"]
    # The metric counts every refusal, throttled ones included.
    status, _, metrics = await _get(gw, "/metrics", "127.0.0.1")
    assert status == 200
    assert 'tokengate_admin_refused_total{reason="wrong_key"} 3.0' in metrics
    assert 'tokengate_admin_refused_total{reason="throttled"} 9.0' in metrics


# --- another workspace's users --------------------------------------------------


async def test_probing_another_workspace_reveals_neither_its_name_nor_its_users(gw: Gw) -> None:
    """An admin of `default` asking about `other` and its users gets the answers a made-up name gets."""
    pairs = [  # (about the other workspace, about nothing that exists)
        (("DELETE", "/users/oscar", None), ("DELETE", "/users/nobody", None)),
        (("GET", "/users?workspace=other", None), ("GET", "/users?workspace=nowhere", None)),
        (("GET", "/tokens?workspace=other", None), ("GET", "/tokens?workspace=nowhere", None)),
        (("GET", "/audit?workspace=other", None), ("GET", "/audit?workspace=nowhere", None)),
        (("GET", "/workspaces/other/trusted-auth", None),
         ("GET", "/workspaces/nowhere/trusted-auth", None)),
        (("POST", "/tokens", {"type": "workspace", "name": "x", "workspace": "other"}),
         ("POST", "/tokens", {"type": "workspace", "name": "x", "workspace": "nowhere"})),
        (("POST", "/users", {"username": "x1", "role": "member", "workspace": "other"}),
         ("POST", "/users", {"username": "x1", "role": "member", "workspace": "nowhere"})),
    ]
    for (m1, p1, b1), (m2, p2, b2) in pairs:
        real = await gw.call(m1, p1, NO_BODY if b1 is None else b1, actor="alice")
        made_up = await gw.call(m2, p2, NO_BODY if b2 is None else b2, actor="alice")
        assert real.status == made_up.status and real.status in (403, 404), (p1, real.body)
        assert real.body == made_up.body, (p1, real.body, made_up.body)
        assert "olga" not in real.text and "oscar" not in real.text.replace(p1, "")


async def test_a_taken_username_is_the_same_conflict_wherever_it_lives(gw: Gw) -> None:
    """Adding a name taken in another workspace answers exactly as for one taken in the admin's own."""
    elsewhere = await gw.call("POST", "/users", {"username": "oscar", "role": "member"},
                              actor="alice")
    here = await gw.call("POST", "/users", {"username": "bob", "role": "member"}, actor="alice")
    assert elsewhere.status == here.status == 409
    assert elsewhere.body == {**here.body, "detail": here.detail.replace("bob", "oscar")}
    assert "other" not in elsewhere.text and "olga" not in elsewhere.text
