"""The forward-auth decision endpoint, asked the way each proxy asks.

nginx and Caddy are also driven for real in tests/authz/; here every shape
(nginx, Traefik/Caddy, Envoy) is sent straight to the endpoint, which is how
Envoy and Traefik (not installable here) are covered.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.policy.credentials import new_secret
from gateway.policy.rules import DEFAULT_RULES
from tests.conftest import InProcess, RecordingUpstream, basic
from tests.rules.support import (
    MakeGateway,
    RawResponse,
    enable_trusted_auth,
    problem,
    raw_request,
    trusted_bearer,
)
from tests.rules.test_spellings import AMBIGUOUS, CLONE_SPELLINGS, INVITE_SPELLINGS

PREFIX = "/_tokengate/authz"
MESSAGES = {rule["name"]: rule["message"] for rule in DEFAULT_RULES}
AUTHZ = {"authz": {"enabled": True}}

Ask = Callable[..., Any]


def nginx(method: str, uri: str) -> tuple[str, str, dict[str, str]]:
    """nginx auth_request: GET to the prefix, the original in X-Original-*."""
    return "GET", PREFIX, {"X-Original-Method": method, "X-Original-URI": uri}


def forwarded(method: str, uri: str) -> tuple[str, str, dict[str, str]]:
    """Traefik forwardAuth and Caddy forward_auth: GET, X-Forwarded-Method/-Uri/-Host/-Proto."""
    return "GET", PREFIX, {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri,
                           "X-Forwarded-Host": "api.example", "X-Forwarded-Proto": "https"}


def envoy(method: str, uri: str) -> tuple[str, str, dict[str, str]]:
    """Envoy ext_authz (HTTP): the original method, path_prefix + the original path."""
    return method, PREFIX + uri, {}


SHAPES = {"nginx": nginx, "forwarded": forwarded, "envoy": envoy}


async def decide(g: InProcess, shape: str, method: str, uri: str,
                 headers: dict[str, str] | None = None) -> RawResponse:
    """Ask ``g``'s decision endpoint about ``method uri`` the way ``shape``'s proxy does."""
    how, target, shaped = SHAPES[shape](method, uri)
    return await raw_request(g.proxy, how, target, headers={**shaped, **(headers or {})})


def refusal(r: RawResponse, shape: str) -> dict[str, Any]:
    """The problem a refusal carries: in its body, or for nginx in two headers and no body.

    nginx's auth_request drops the body and turns most statuses into 500; the
    shipped config re-emits X-Tokengate-Status and X-Tokengate-Problem.
    """
    if shape != "nginx":
        assert "X-Tokengate-Status" not in r.headers and "X-Tokengate-Problem" not in r.headers
        return problem(r)
    assert r.body == b"", r  # unread by nginx: sent, it would cost the pooled connection
    assert r.headers["X-Tokengate-Status"] == str(r.status)
    body: dict[str, Any] = json.loads(r.headers["X-Tokengate-Problem"])
    assert body["status"] == r.status
    return body


def auth(g: InProcess) -> dict[str, str]:
    return {"Authorization": basic(g.token, g.secret)}


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_allowed_request_is_200_with_identity_and_quota_and_no_body(
    make_gateway: MakeGateway, upstream: RecordingUpstream, shape: str
) -> None:
    """Allow: 200, empty body, the identity headers, the rate-limit headers, the request id, the judged URI."""
    g = await make_gateway(AUTHZ)
    r = await decide(g, shape, "POST", "/api/default/./Reports/r1/runs/x/..?b=2&a",
                     {**auth(g), "X-Request-Id": "req-42"})
    assert r.status == 200, r
    assert r.body == b""
    assert r.headers["X-Tokengate-User"] == "workspace:default"
    assert r.headers["X-Tokengate-Role"] == "admin"
    assert r.headers["X-Tokengate-Token-Type"] == "workspace"
    assert r.headers["X-Tokengate-Token"] == g.token
    assert r.headers["X-Tokengate-Workspace"] == "default"
    assert r.headers["X-RateLimit-Limit"] == "40"
    assert r.headers["X-RateLimit-Remaining"] == "39"
    assert r.headers["X-Request-Id"] == "req-42"
    assert r.headers["X-Tokengate-Uri"] == "/api/default/Reports/r1/runs/?b=2&a"
    assert "X-Tokengate-Status" not in r.headers
    assert upstream.seen == []  # a decision forwards nothing


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_refusal_has_the_sidecars_status_headers_and_problem(
    make_gateway: MakeGateway, shape: str
) -> None:
    """No credentials or wrong ones: 401 with WWW-Authenticate and the problem body, as the sidecar answers."""
    g = await make_gateway(AUTHZ)
    for headers in ({}, {"Authorization": basic(g.token, new_secret())}):
        r = await decide(g, shape, "GET", "/api/default/reports", headers)
        assert r.status == 401, r
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        body = refusal(r, shape)
        sidecar = await raw_request(g.proxy, "GET", "/api/default/reports", headers=headers)
        assert (sidecar.status, problem(sidecar)) == (401, body)


@pytest.mark.parametrize("shape", SHAPES)
async def test_every_spelling_of_a_denied_endpoint_is_refused(
    make_gateway: MakeGateway, upstream: RecordingUpstream, shape: str
) -> None:
    """The sidecar's spelling table, asked about as an original request: each gets the rule's 403."""
    g = await make_gateway(AUTHZ)
    cases = [*(("create-invite", p) for p in INVITE_SPELLINGS),
             *(("clone-report-run", p) for p in CLONE_SPELLINGS)]
    for rule, path in cases:
        r = await decide(g, shape, "POST", path, auth(g))
        assert r.status == 403, (path, r)
        body = refusal(r, shape)
        assert (body["rule"], body["detail"]) == (rule, MESSAGES[rule]), path
    # Denied requests use no quota.
    r = await decide(g, shape, "GET", "/api/default/reports", auth(g))
    assert r.status == 200 and r.headers["X-RateLimit-Remaining"] == "39"
    assert upstream.seen == []


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_unnormalisable_original_path_is_400(make_gateway: MakeGateway, shape: str) -> None:
    """Encoded slashes, climbs above the root, NULs...: 400, as the sidecar answers."""
    g = await make_gateway(AUTHZ)
    for path in AMBIGUOUS:
        if shape == "envoy" and not path.startswith("/"):
            continue  # Envoy's paths always start with '/': no such decision request exists
        r = await decide(g, shape, "GET", path, auth(g))
        assert r.status == 400, (path, r)
        assert refusal(r, shape)["title"] == "Bad request"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("headers", "query"), [
    ({"X-HTTP-Method-Override": "POST"}, ""),
    ({"X_HTTP_Method_Override": "post"}, ""),
    ({}, "?_method=POST"),
])
async def test_a_method_override_in_the_original_request_is_judged(
    make_gateway: MakeGateway, shape: str, headers: dict[str, str], query: str
) -> None:
    """GET with an override naming POST on a denied endpoint is refused: the proxy passes the headers on."""
    g = await make_gateway(AUTHZ)
    r = await decide(g, shape, "GET", "/api/default/invites" + query, {**auth(g), **headers})
    assert r.status == 403 and refusal(r, shape)["rule"] == "create-invite"


@pytest.mark.parametrize("shape", SHAPES)
async def test_the_quota_counts_down_then_429_with_retry_after(
    make_gateway: MakeGateway, shape: str
) -> None:
    """Each allowed decision uses the user's quota; past it, 429 with Retry-After and the rate-limit headers."""
    g = await make_gateway({**AUTHZ, "rate_limit": {"limit": 3, "window_seconds": 30}})
    remaining = []
    for _ in range(3):
        r = await decide(g, shape, "GET", "/api/default/reports", auth(g))
        assert r.status == 200
        remaining.append(r.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    r = await decide(g, shape, "GET", "/api/default/reports", auth(g))
    assert r.status == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == ("3", "0")
    assert refusal(r, shape)["status"] == 429


async def test_a_trusted_bearer_is_decided_like_basic(make_gateway: MakeGateway) -> None:
    """A trusted-auth bearer gets its user's identity from a decision too."""
    g = await make_gateway(AUTHZ)
    async with aiohttp.ClientSession() as session:
        key = await enable_trusted_auth(g, session)
        bearer = await trusted_bearer(g, session, key, "root")
    r = await decide(g, "nginx", "GET", "/api/default/reports", {"Authorization": f"Bearer {bearer}"})
    assert r.status == 200, r
    assert (r.headers["X-Tokengate-User"], r.headers["X-Tokengate-Token-Type"]) == ("root", "trusted")


async def test_failed_auth_is_throttled_per_forwarded_client(make_gateway: MakeGateway) -> None:
    """The failed-auth budget follows the client the proxy names in X-Forwarded-For, not the proxy."""
    g = await make_gateway({**AUTHZ, "rate_limit": {"auth_failures": {"limit": 2, "window_seconds": 30}}})
    bad = {"Authorization": basic(g.token, new_secret())}
    a = {"X-Forwarded-For": "198.51.100.7"}
    statuses = [(await decide(g, "nginx", "GET", "/x", {**bad, **a})).status for _ in range(3)]
    assert statuses == [401, 401, 429]
    assert (await decide(g, "nginx", "GET", "/x", {**auth(g), **a})).status == 429
    b = {"X-Forwarded-For": "198.51.100.8"}
    assert (await decide(g, "nginx", "GET", "/x", {**auth(g), **b})).status == 200


async def test_a_peer_not_trusted_to_ask_is_403_and_counted(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """Only authz.trusted_proxies may ask: anyone else gets 403 and the refusal is counted."""
    g = await make_gateway({"authz": {"enabled": True, "trusted_proxies": ["10.0.0.0/8"]}})
    metrics = g.gw.metrics  # type: ignore[attr-defined]
    r = await decide(g, "nginx", "GET", "/api/default/reports", auth(g))
    # Said in nginx's terms, so a wrong trusted_proxies does not read as "tokengate is down".
    assert r.status == 403 and refusal(r, "nginx")["rule"] == "authz-peer"
    assert metrics.registry.get_sample_value("tokengate_authz_untrusted_peers_total") == 1
    assert upstream.seen == []
    # The sidecar still serves the same client.
    assert (await raw_request(g.proxy, "GET", "/api/default/reports", headers=auth(g))).status == 200


async def test_decisions_are_counted_by_protocol_and_outcome(make_gateway: MakeGateway) -> None:
    """tokengate_authz_decisions_total has a series per protocol and allowed true/false."""
    g = await make_gateway(AUTHZ)
    registry = g.gw.metrics.registry  # type: ignore[attr-defined]

    def count(protocol: str, allowed: str) -> float | None:
        return registry.get_sample_value("tokengate_authz_decisions_total",
                                         {"protocol": protocol, "allowed": allowed})

    assert count("envoy", "true") == 0
    await decide(g, "envoy", "GET", "/a", auth(g))
    await decide(g, "forwarded", "GET", "/a", {})
    await decide(g, "nginx", "POST", "/api/default/invites", auth(g))
    assert [count(p, a) for p in ("envoy", "forwarded", "nginx") for a in ("true", "false")] == [
        1, 0, 0, 1, 0, 1]


async def test_a_client_added_shape_is_refused_not_preferred(make_gateway: MakeGateway) -> None:
    """Through Traefik a client can add X-Original-URI: two shapes at once is 400, never a bypass."""
    g = await make_gateway(AUTHZ)
    r = await decide(g, "forwarded", "POST", "/api/default/invites",
                     {**auth(g), "X-Original-Method": "GET", "X-Original-URI": "/api/default/reports"})
    assert r.status == 400 and "more than one" in problem(r)["detail"]
    r = await raw_request(g.proxy, "GET", PREFIX + "/api/default/reports",
                          headers={**auth(g), "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/x"})
    assert r.status == 400


async def test_the_decision_path_must_be_spelled_literally(make_gateway: MakeGateway) -> None:
    """A decoded spelling of the prefix would shift where the original path starts: 400."""
    g = await make_gateway(AUTHZ)
    r = await raw_request(g.proxy, "GET", "/_tokengate/%61uthz/api/default/reports", headers=auth(g))
    assert r.status == 400 and "literally" in problem(r)["detail"]


async def test_without_authz_the_path_is_an_ordinary_proxied_path(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """authz is off by default: its path is proxied like any other, nothing is decided."""
    g = await make_gateway()
    r = await raw_request(g.proxy, "GET", PREFIX + "/x",
                          headers={**auth(g), "X-Original-Method": "POST", "X-Original-URI": "/y"})
    assert r.status == 200 and upstream.seen[-1].raw_path == PREFIX + "/x"


async def test_the_sidecar_keeps_working_beside_the_endpoint(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """With authz on, other paths are still proxied with every check."""
    g = await make_gateway(AUTHZ)
    r = await raw_request(g.proxy, "GET", "/api/default/reports", headers=auth(g))
    assert r.status == 200 and upstream.seen[-1].raw_path == "/api/default/reports"
    r = await raw_request(g.proxy, "POST", "/api/default/invites", headers=auth(g))
    assert r.status == 403


@pytest.fixture
async def dead_store_gateway(make_gateway: MakeGateway) -> AsyncIterator[tuple[InProcess, str]]:
    """A gateway whose store is a closed port (and a valid credential for it)."""
    from gateway.config import load_settings
    from gateway.keys import Keys
    from gateway.proxy.app import build_proxy_app
    from gateway.runtime import Gateway
    from gateway.store import open_store

    g = await make_gateway(AUTHZ)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    settings = load_settings(environ={}, overrides={
        **AUTHZ, "store": {"url": f"redis://127.0.0.1:{port}/0", "timeout_seconds": 0.5},
        "log": {"access": False}})
    gw = Gateway(settings, Keys.from_master(b"k" * 32), open_store(settings.store.url, timeout=0.5))
    server = TestServer(build_proxy_app(gw), host="127.0.0.1")
    await server.start_server()
    try:
        yield g, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
        await gw.store.close()


@pytest.mark.parametrize("shape", SHAPES)
async def test_store_down_is_503_never_an_allow(
    dead_store_gateway: tuple[InProcess, str], shape: str
) -> None:
    """Fail closed: with the store unreachable a decision is 503 with Retry-After and the problem."""
    g, proxy = dead_store_gateway
    how, target, shaped = SHAPES[shape]("GET", "/api/default/reports")
    r = await raw_request(proxy, how, target, headers={**shaped, **auth(g)})
    assert r.status == 503 and r.headers["Retry-After"] == "1"
    assert refusal(r, shape)["status"] == 503


async def test_a_real_process_logs_the_original_request_and_records_last_use(
    gateway_factory, redis_url: str, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """TOKENGATE_AUTHZ_ENABLED turns it on; the access line names the original method and path; last_used_at is set."""
    from tests.rules.support import process_token

    gp = gateway_factory(store_url=redis_url, upstream=upstream.url,
                         extra_env={"TOKENGATE_AUTHZ_ENABLED": "true"})
    token, secret = await process_token(gp)
    r = await raw_request(gp.proxy, "GET", PREFIX, headers={
        "Authorization": basic(token, secret), "X-Original-Method": "DELETE",
        "X-Original-URI": "/api/default/reports/r7", "X-Request-Id": "authz-log-1"})
    assert r.status == 200, r
    assert gp.stop() == 0  # the shutdown flush writes last_used_at
    lines = [json.loads(line) for line in gp.logs().splitlines() if "authz-log-1" in line]
    access = [line for line in lines if line.get("path") == "/api/default/reports/r7"]
    assert len(access) == 1, lines
    assert (access[0]["method"], access[0]["status"], access[0]["outcome"]) == ("DELETE", 200, "allowed")
    restarted = gateway_factory(store_url=redis_url, upstream=upstream.url,
                                master_key=gp.env["TOKENGATE_MASTER_KEY"])
    status, listing = restarted.admin_call("GET", "/admin/api/tokens")
    row = next(t for t in listing["tokens"] if t["token"] == token)
    assert status == 200 and row["last_used_at"] is not None

