"""Envoy and Traefik (not runnable here): their shipped configs' request shapes against a real tokengate."""

from __future__ import annotations

import json

import pytest

from gateway.policy.headers import spoofable
from tests.authz.conftest import Stack
from tests.authz.emulated import EMULATED, Envoy, Traefik
from tests.authz.test_proxies import SPOOFED, sidecar
from tests.conftest import basic
from tests.rules.support import process_token


@pytest.fixture(params=list(EMULATED))
def proxy(request: pytest.FixtureRequest, stack: Stack) -> Envoy | Traefik:
    """Envoy's or Traefik's way of asking this module's tokengate."""
    return EMULATED[request.param](stack.gateway.proxy)


async def test_an_allowed_request_carries_tokengates_identity_only(
    proxy: Envoy | Traefik, stack: Stack
) -> None:
    """Allowed: the upstream would get tokengate's identity, none of the client's copies, no Authorization."""
    token, secret = await process_token(stack.gateway)
    outcome = await proxy.ask("POST", "/api/default/reports/r1?x=1",
                              {"Authorization": basic(token, secret), **SPOOFED})
    assert outcome.status == 200, outcome
    assert outcome.upstream_headers is not None
    identity = {(k.lower(), v) for k, v in outcome.upstream_headers.items() if spoofable(k)}
    expected = {("x-tokengate-user", "workspace:default"), ("x-tokengate-role", "admin"),
                ("x-tokengate-token-type", "workspace"), ("x-tokengate-token", token),
                ("x-tokengate-workspace", "default")}
    if proxy.name == "traefik":
        # authResponseHeadersRegex copies every X-Tokengate-* of the answer, the judged URI too.
        expected.add(("x-tokengate-uri", "/api/default/reports/r1?x=1"))
    assert identity == expected
    assert "Authorization" not in outcome.upstream_headers
    assert "X-HTTP-Method-Override" not in outcome.upstream_headers
    if proxy.name == "envoy":
        assert outcome.client_headers["X-RateLimit-Remaining"] == "999"


async def test_refusals_reach_the_client_with_their_headers_and_problem(
    proxy: Envoy | Traefik, stack: Stack
) -> None:
    """401 with WWW-Authenticate, the deny rule's 403, the workspace 403 and the 400 pass the proxy's filters intact."""
    token, secret = await process_token(stack.gateway)
    auth = {"Authorization": basic(token, secret)}
    cases = [
        ("GET", "/api/default/reports", {}, 401, None),
        ("POST", "/api/default/reports/r1/runs/run9/CLONE/", auth, 403, "clone-report-run"),
        ("GET", "/api/default/reports", {**auth, "X-HTTP-Method-Override": "POST"}, 200, None),
        ("GET", "/api/default/invites", {**auth, "X-HTTP-Method-Override": "POST"}, 403,
         "create-invite"),
        ("GET", "/api/other/x", auth, 403, "workspace-scope"),
        ("GET", "/api/default/%5Cinvites", auth, 400, None),
    ]
    for method, target, headers, status, rule in cases:
        outcome = await proxy.ask(method, target, headers)
        assert outcome.status == status, (target, outcome)
        if status == 200:
            continue
        assert outcome.client_headers["Content-Type"].startswith("application/problem+json")
        expected = await sidecar(stack, method, target, headers)
        assert outcome.body == expected.body, target
        if rule is not None:
            assert f'"rule":"{rule}"' in outcome.body.decode()
        if status == 401:
            assert outcome.client_headers.getall("WWW-Authenticate") == ['Basic realm="tokengate"']
        assert outcome.client_headers["X-Request-Id"]


async def test_the_quota_counts_down_then_429_with_retry_after(
    proxy: Envoy | Traefik, stack: Stack
) -> None:
    """Allowed decisions use the quota; the 429 keeps Retry-After and the rate-limit headers through the proxy."""
    token, secret = await process_token(stack.gateway)
    auth = {"Authorization": basic(token, secret)}
    for _ in range(3):
        assert (await proxy.ask("GET", "/api/default/quota/a", auth)).status == 200
    outcome = await proxy.ask("GET", "/api/default/quota/a", auth)
    assert outcome.status == 429, outcome
    headers = outcome.client_headers
    assert int(headers["Retry-After"]) >= 1
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("3", "0")
    assert headers["RateLimit-Policy"] == '"tiny";q=3;w=60'


async def test_envoy_asks_with_the_method_and_the_prefixed_path(stack: Stack) -> None:
    """Envoy's decision request is the original method on path_prefix + path: a DELETE is judged as DELETE."""
    envoy = Envoy(stack.gateway.proxy)
    assert envoy.prefix == "/_tokengate/authz"
    assert envoy.ext_authz["failure_mode_allow"] is False
    assert envoy.ext_authz["status_on_error"] == {"code": "ServiceUnavailable"}
    token, secret = await process_token(stack.gateway)
    auth = {"Authorization": basic(token, secret)}
    assert (await envoy.ask("DELETE", "/api/default/reports/r1", auth)).status == 200
    access = [json.loads(line) for line in stack.gateway.logs().splitlines()
              if '"tokengate.access"' in line]
    assert (access[-1]["method"], access[-1]["path"], access[-1]["status"]) == (
        "DELETE", "/api/default/reports/r1", 200)
    # The credential, the client and whatever can override the method reach the decision.
    request = envoy.client_request({
        "Authorization": "x", "X-HTTP-Method-Override": "POST", "X-HTTP-Method": "POST",
        "X-Method-Override": "POST", "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-For": "203.0.113.9", "X-Request-Id": "r", "Cookie": "c=1"})
    assert set(envoy.to_decision(request)) == set(request) - {"cookie"}
