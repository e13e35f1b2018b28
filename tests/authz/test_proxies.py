"""tokengate deciding for real nginx and real Caddy, each running its shipped config.

Every test runs once per proxy. The client talks to the proxy; the proxy asks
tokengate (a real process, authz on) and forwards to a recording upstream.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from gateway.policy.headers import spoofable
from gateway.policy.rules import DEFAULT_RULES
from tests.authz.conftest import Stack, start_stack
from tests.authz.proxies import PROXIES, Proxy
from tests.conftest import basic
from tests.rules.support import RawResponse, problem, process_token, raw_request
from tests.rules.test_spellings import AMBIGUOUS, CLONE_SPELLINGS, FORWARDED, INVITE_SPELLINGS

MESSAGES = {rule["name"]: rule["message"] for rule in DEFAULT_RULES}
IDENTITY = ("X-Tokengate-User", "X-Tokengate-Role", "X-Tokengate-Token-Type",
            "X-Tokengate-Token", "X-Tokengate-Workspace")
# A client's identity headers in the spellings an upstream could read as the
# real ones (letter case, '_' for '-'), and a method override the rules judged.
SPOOFED = {
    "X-Tokengate-User": "admin", "x-tokengate-role": "owner", "X-TOKENGATE-WORKSPACE": "other",
    "X-Tokengate-Token": "tg_forged", "X-Tokengate-Token-Type": "personal",
    "X-Tokengate-Assertion": "forged", "X-Tokengate-Actor": "admin", "X-Tokengate-Uri": "/admin",
    "X_Tokengate_Role": "owner", "X_TOKENGATE_USER": "admin", "X-Tokengate_Workspace": "other",
    "X-HTTP-Method-Override": "GET",
}


async def token(stack: Stack) -> dict[str, str]:
    """The Authorization header of a new workspace token (each test has its own quota)."""
    return {"Authorization": basic(*await process_token(stack.gateway))}


def problem_of(r: RawResponse) -> dict[str, Any]:
    """The problem body, which must be tokengate's: no proxy-made error page."""
    body = problem(r)
    assert body["type"].startswith("https://tokengate.dev/problems/"), body
    return body


async def sidecar(stack: Stack, method: str, target: str, headers: dict[str, str]) -> RawResponse:
    """What tokengate's own proxy listener answers to the same request."""
    return await raw_request(stack.gateway.proxy, method, target, headers=headers)


async def test_a_valid_token_reaches_the_upstream_with_identity_and_nothing_spoofed(
    via: Proxy, stack: Stack
) -> None:
    """Allowed: the upstream gets tokengate's identity headers once each, no Authorization, none of the client's copies."""
    token_id, secret = await process_token(stack.gateway)
    auth = {"Authorization": basic(token_id, secret)}
    r = await raw_request(via.url, "GET", "/api/default/reports?x=1",
                          headers={**auth, **SPOOFED, "X-Request-Id": "via-1"})
    assert r.status == 200, r
    assert r.headers["X-Request-Id"] == "via-1"
    assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == ("1000", "999")
    [seen] = stack.upstream.seen
    assert (seen.method, seen.raw_path) == ("GET", "/api/default/reports?x=1")
    identity = [(name.lower(), value) for name, value in seen.headers if spoofable(name)]
    assert sorted(identity) == sorted([
        ("x-tokengate-user", "workspace:default"), ("x-tokengate-role", "admin"),
        ("x-tokengate-token-type", "workspace"), ("x-tokengate-token", token_id),
        ("x-tokengate-workspace", "default")])
    names = {name.lower() for name, _ in seen.headers}
    assert "authorization" not in names and "x-http-method-override" not in names
    assert secret not in json.dumps(seen.headers)
    assert CIMultiDict(seen.headers).getall("X-Request-Id") == ["via-1"]


async def test_trusted_auth_mints_through_the_proxy_and_its_bearer_is_decided(
    via: Proxy, stack: Stack
) -> None:
    """The token request reaches tokengate itself through the proxy; the bearer it mints reaches the upstream as its user."""
    gp = stack.gateway
    username = f"ada-{via.name}"
    for method, path, body in [("POST", "/admin/api/users", {"username": username, "role": "member"}),
                               ("PUT", "/admin/api/workspaces/default/trusted-auth", None)]:
        status, answer = await asyncio.to_thread(gp.admin_call, method, path, body)
        assert status in (200, 201), answer
    minted = await raw_request(via.url, "POST", "/api/rest/2.0/auth/token/full",
                               body=json.dumps({"username": username,
                                                "secret_key": answer["secret_key"]}).encode(),
                               headers={"Content-Type": "application/json"})
    assert minted.status == 200, minted
    bearer = {"Authorization": "Bearer " + minted.json()["token"]}
    r = await raw_request(via.url, "GET", "/api/default/reports", headers=bearer)
    assert r.status == 200, r
    seen = CIMultiDict(stack.upstream.seen[-1].headers)
    assert (seen["X-Tokengate-User"], seen["X-Tokengate-Token-Type"]) == (username, "trusted")
    assert [s.raw_path for s in stack.upstream.seen] == ["/api/default/reports"]


async def test_caddy_strips_every_x_tokengate_name(proxies: dict[str, Proxy], stack: Stack) -> None:
    """Caddy removes a client's X-Tokengate-* of any name (nginx can replace only the names tokengate defines)."""
    stack.upstream.seen.clear()
    auth = await token(stack)
    r = await raw_request(proxies["caddy"].url, "GET", "/api/default/reports",
                          headers={**auth, "X-Tokengate-Admin": "yes", "x_tokengate_groups": "root"})
    assert r.status == 200, r
    names = {name.lower() for name, _ in stack.upstream.seen[-1].headers if spoofable(name)}
    assert names == {name.lower() for name in IDENTITY}


async def test_401_reaches_the_client_with_www_authenticate_and_the_problem(
    via: Proxy, stack: Stack
) -> None:
    """No credential, or a wrong one: 401, one WWW-Authenticate, the sidecar's problem body; nothing forwarded."""
    for headers in ({}, {"Authorization": basic("tg_nosuchtoken", "tgs_wrong")}):
        r = await raw_request(via.url, "GET", "/api/default/reports", headers=headers)
        assert r.status == 401, r
        assert r.headers.getall("WWW-Authenticate") == ['Basic realm="tokengate"']
        assert r.headers["X-Request-Id"]
        expected = await sidecar(stack, "GET", "/api/default/reports", headers)
        assert problem_of(r) == problem(expected)
        assert "X-Tokengate-Status" not in r.headers and "X-Tokengate-Problem" not in r.headers
    assert stack.upstream.seen == []


@pytest.mark.parametrize(("method", "target", "rule"), [
    ("POST", "/api/default/invites", "create-invite"),
    ("GET", "/api/other/reports", "workspace-scope"),
    ("GET", "/api/default/invites?_method=POST", "create-invite"),
])
async def test_403_reaches_the_client_with_the_rule(
    via: Proxy, stack: Stack, method: str, target: str, rule: str
) -> None:
    """A deny rule, the workspace scope and a judged method override are 403 naming the rule, never forwarded."""
    auth = await token(stack)
    r = await raw_request(via.url, method, target, headers=auth)
    assert r.status == 403, r
    assert problem_of(r)["rule"] == rule
    assert stack.upstream.seen == []


async def test_400_for_an_unnormalisable_path_is_tokengates(via: Proxy, stack: Stack) -> None:
    """An encoded slash is tokengate's 400 problem at the client, not a proxy's 500 or page."""
    auth = await token(stack)
    r = await raw_request(via.url, "GET", "/api/default%2Finvites", headers=auth)
    assert r.status == 400, r
    assert problem_of(r) == problem(await sidecar(stack, "GET", "/api/default%2Finvites", auth))
    assert stack.upstream.seen == []


@pytest.mark.parametrize("path", [p for p in AMBIGUOUS if p.startswith("/")])
async def test_no_ambiguous_path_is_forwarded(via: Proxy, stack: Stack, path: str) -> None:
    """Every path the sidecar refuses as ambiguous is 400 through the proxy (tokengate's, or the proxy's own parser's)."""
    auth = await token(stack)
    r = await raw_request(via.url, "POST", path, headers=auth)
    if via.name == "caddy" and "#" in path:
        # Go reads a raw '#' in the target as a path character: tokengate
        # judges, and the upstream receives, the segment "invites%23frag".
        assert r.status == 200, r
        assert stack.upstream.seen[-1].raw_path == path.replace("#", "%23")
        return
    assert r.status == 400, r
    assert stack.upstream.seen == []


async def test_every_spelling_of_a_denied_endpoint_is_refused(via: Proxy, stack: Stack) -> None:
    """The sidecar's spelling table through the proxy: each spelling is the rule's 403, none forwarded."""
    auth = await token(stack)
    cases = [*(("create-invite", p) for p in INVITE_SPELLINGS),
             *(("clone-report-run", p) for p in CLONE_SPELLINGS)]
    for rule, path in cases:
        r = await raw_request(via.url, "POST", path, headers=auth)
        assert r.status == 403, (path, r)
        body = problem_of(r)
        assert (body["rule"], body["detail"]) == (rule, MESSAGES[rule]), path
    assert stack.upstream.seen == []


@pytest.mark.parametrize(("sent", "judged"), FORWARDED.items())
async def test_the_upstream_routes_what_was_judged(
    via: Proxy, stack: Stack, sent: str, judged: str
) -> None:
    """nginx forwards tokengate's normalised URI; Caddy (which cannot rewrite to it) the client's own target."""
    auth = await token(stack)
    r = await raw_request(via.url, "GET", sent, headers=auth)
    assert r.status == 200, r
    assert stack.upstream.seen[-1].raw_path == (judged if via.name == "nginx" else sent)


async def test_the_quota_counts_down_then_429_with_retry_after(via: Proxy, stack: Stack) -> None:
    """Each answer tells the remaining quota; past it the client gets 429 with Retry-After and the rate-limit headers."""
    auth = await token(stack)
    remaining = []
    for _ in range(3):
        r = await raw_request(via.url, "GET", "/api/default/quota/x", headers=auth)
        assert r.status == 200, r
        assert r.headers["X-RateLimit-Limit"] == "3"
        remaining.append(r.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    r = await raw_request(via.url, "GET", "/api/default/quota/x", headers=auth)
    assert r.status == 429, r
    assert int(r.headers["Retry-After"]) >= 1
    assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == ("3", "0")
    assert r.headers["RateLimit-Policy"] == '"tiny";q=3;w=60'
    assert r.headers["RateLimit"].startswith('"tiny";r=0;t=')
    assert problem_of(r)["status"] == 429
    assert len(stack.upstream.seen) == 3


async def test_revocation_takes_effect_within_a_second(via: Proxy, stack: Stack) -> None:
    """After the admin API revokes a token, the proxy's client gets 401 within 1 s."""
    token_id, secret = await process_token(stack.gateway)
    auth = {"Authorization": basic(token_id, secret)}
    assert (await raw_request(via.url, "GET", "/api/default/reports", headers=auth)).status == 200
    status, _ = await asyncio.to_thread(stack.gateway.admin_call, "DELETE",
                                        f"/admin/api/tokens/{token_id}")
    assert status == 200
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    statuses = []
    while loop.time() < deadline:
        statuses.append((await raw_request(via.url, "GET", "/api/default/reports",
                                           headers=auth)).status)
        if statuses[-1] == 401:
            break
    assert statuses[-1] == 401, statuses
    assert set(statuses) <= {200, 401}


def sockets_to(port: int) -> dict[str, int]:
    """TCP sockets (by state: "01" established, "06" time-wait) whose remote end is ``port`` on 127.0.0.1."""
    states: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == f"0100007F:{port:04X}":
            states[fields[3]] = states.get(fields[3], 0) + 1
    return states


@pytest.fixture(params=list(PROXIES))
def own_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A stack of its own (its Redis and tokengate get stopped) with one proxy in front."""
    stack = start_stack(tmp_path)
    proxy = PROXIES[request.param](tmp_path / request.param, tokengate=stack.gateway.proxy,
                                   upstream=stack.upstream.url)
    yield stack, proxy
    proxy.stop()
    stack.stop()


async def test_store_down_then_tokengate_down_is_503_never_a_pass_through(
    own_stack: tuple[Stack, Proxy]
) -> None:
    """Redis stopped: tokengate's 503 problem at the client; tokengate stopped too: the proxy's own 503 problem."""
    stack, via = own_stack
    auth = await token(stack)
    assert (await raw_request(via.url, "GET", "/api/default/reports", headers=auth)).status == 200
    stack.redis.stop()
    r = await raw_request(via.url, "GET", "/api/default/reports", headers=auth)
    assert r.status == 503, r
    assert r.headers["Retry-After"] == "1"
    assert problem_of(r)["type"].endswith("/store-unavailable")
    stack.gateway.stop()
    r = await raw_request(via.url, "GET", "/api/default/reports", headers=auth)
    assert r.status == 503, r
    assert r.headers["Retry-After"] == "1"
    assert problem_of(r)["type"].endswith("/authz-unavailable")
    assert len(stack.upstream.seen) == 1


async def test_allowed_decisions_reuse_one_pooled_connection(own_stack: tuple[Stack, Proxy]) -> None:
    """Sequential allowed and refused requests are decided over one kept-alive connection to tokengate, never one each."""
    stack, via = own_stack
    auth = await token(stack)
    port = int(stack.gateway.proxy.rsplit(":", 1)[1])
    for _ in range(20):
        assert (await raw_request(via.url, "GET", "/api/default/reports", headers=auth)).status == 200
    # A connection the proxy had closed would linger in TIME_WAIT on its side.
    assert sockets_to(port) == {"01": 1}
    # Refusals too: a 401 or 403 flood must not cost a connection each (for
    # nginx the problem travels in headers, with no body for it to discard).
    for _ in range(10):
        assert (await raw_request(via.url, "GET", "/api/default/reports")).status == 401
        assert (await raw_request(via.url, "POST", "/api/default/invites", headers=auth)).status == 403
    assert sockets_to(port) == {"01": 1}
