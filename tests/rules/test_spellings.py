"""Every spelling of a denied path is denied; ambiguous paths are 400; upstream sees the rules' path."""

from __future__ import annotations

import logging

import pytest

from gateway.policy.paths import normalize_path
from gateway.policy.rules import DEFAULT_RULES
from tests.conftest import InProcess, RecordingUpstream, basic
from tests.rules.support import GatewayFactory, MakeGateway, problem, process_token, raw_request

MESSAGES = {rule["name"]: rule["message"] for rule in DEFAULT_RULES}
# The format suffixes of issue 11 (and a few more), each routed to the bare action.
FORMAT_SUFFIXES = [
    ".json", ".x-y", ".x_y", ".~", ".$", ".+", ".*", ".(x)", ".%E2%82%AC", ".%2d", ".%2D",
    ".JSON", "%2Ejson", ".a.b", ".", ".json;v=1",
]

# Spellings an ordinary framework (after decoding, dot-segment removal, slash
# merging, case-insensitive or trailing-slash-tolerant routing, ";params"
# stripping) would still route to the create-invite or clone handler.
INVITE_SPELLINGS = [
    "/api/default/invites",
    "/API/DEFAULT/INVITES", "/api/Default/Invites",
    "/api/default/invites/",
    "//api/default/invites", "/api//default//invites", "/api/default/invites//",
    "/api/./default/invites", "/api/default/./invites", "/api/default/invites/.",
    "/api/default/x/../invites", "/api/x/../default/invites", "/api/default/invites/x/..",
    "/api/default/%2E/invites", "/api/default/x/%2E%2E/invites", "/api/default/x/%2e%2E/invites",
    "/api/default/x/.%2e/invites",
    "/api/default/invit%65s", "/%61pi/default/invites", "/api/default/%69%6E%76%69%74%65%73",
    "/api/default/INVIT%45S", "/api/%64efault/invites",
    "/api/default/invites;jsessionid=abc", "/api/default/invites;", "/api/default;v=1/invites",
    "/api/default/invites?x=1", "/api/default/invites/?next=/x",
    "/API//Default/./x/../INVIT%45S/",
    # Format suffixes Rails' "(.:format)" or Spring's "/invites.*" route to the same action.
    *(f"/api/default/invites{suffix}" for suffix in FORMAT_SUFFIXES),
]
CLONE_SPELLINGS = [
    "/api/default/reports/r1/runs/run9/clone",
    "/api/default/reports/r1/runs/run9/CLONE", "/api/default/reports/r1/runs/run9/clone/",
    "/api/default/reports/r1/runs/run9/cl%6Fne", "/api/default/reports/r1/runs/run9/x/../clone",
    "/api/default/reports/r1/runs//run9/clone", "/api/default/Reports/r1/RUNS/run9/clone;a=b",
    "/api/default/reports/r1/./runs/run9/%2E/clone",
    "/api/default/reports/r1/runs/run9/clone.x-y", "/api/default/reports/r1/runs/run9/clone.%2d",
    "/api/default/reports/r1/runs/run9/CLONE.%E2%82%AC/",
]


@pytest.mark.parametrize(("rule", "path"), [
    *(("create-invite", p) for p in INVITE_SPELLINGS),
    *(("clone-report-run", p) for p in CLONE_SPELLINGS),
])
async def test_every_routable_spelling_of_a_denied_path_is_denied(
    make_gateway: MakeGateway, upstream: RecordingUpstream, rule: str, path: str
) -> None:
    """A spelling an ordinary framework routes to a denied handler gets the same 403 and is not forwarded."""
    g: InProcess = await make_gateway()
    response = await raw_request(g.proxy, "POST", path,
                                 headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 403, response
    body = problem(response)
    assert (body["rule"], body["detail"]) == (rule, MESSAGES[rule])
    assert upstream.seen == []


EXPORTS_RULE = {"name": "no-exports", "methods": ["GET"], "path": "/api/{workspace}/exports/**",
                "token_types": ["workspace"], "message": "exports need a personal token"}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/api/default/exports", "/api/default/exports/a/b",
                                  "/api/default/EXPORTS/", "/api/default/exp%6Frts/x"])
async def test_rule_on_get_also_denies_head(
    make_gateway: MakeGateway, upstream: RecordingUpstream, method: str, path: str
) -> None:
    """Frameworks answer HEAD with the GET handler, so a GET rule refuses HEAD too."""
    g: InProcess = await make_gateway({"deny": [EXPORTS_RULE]})
    response = await raw_request(g.proxy, method, path,
                                 headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 403
    if method == "GET":
        assert problem(response)["rule"] == "no-exports"
    assert upstream.seen == []


async def test_case_sensitive_rule_matches_only_its_case(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """With ``case_sensitive = true`` a rule matches its exact letter case only (for case-sensitive upstreams)."""
    rule = {**EXPORTS_RULE, "case_sensitive": True}
    g: InProcess = await make_gateway({"deny": [rule]})
    auth = {"Authorization": basic(g.token, g.secret)}
    assert (await raw_request(g.proxy, "GET", "/api/default/exports/a", headers=auth)).status == 403
    assert (await raw_request(g.proxy, "GET", "/api/default/exp%6Frts/a", headers=auth)).status == 403
    assert (await raw_request(g.proxy, "GET", "/api/default/EXPORTS/a", headers=auth)).status == 200
    assert [s.raw_path for s in upstream.seen] == ["/api/default/EXPORTS/a"]


# Paths that cannot be normalised one way: the gateway answers 400 (problem+json).
AMBIGUOUS = [
    "/api/default%2Finvites", "/api/default/invites%2f", "/api%2Fdefault/invites",
    "/api/default\\invites", "/api/default/%5Cinvites", "/api/default/%5cinvites",
    "/api/default/invites%00", "/api/default/%00/invites",
    "/api/default/%ff/invites", "/api/default/%C0%AF/invites", "/api/default/invites%c3",
    "/..", "/../api/default/invites", "/api/../../api/default/invites",
    "/api/default/%2E%2E/%2E%2E/%2E%2E/invites",
    "/api/default/..;/invites", "/api/x/..;/default/invites", "/api/default/;x/invites",
    "/api/default/invit%6", "/api/%zz/invites",
    "/api/default/invites#frag", "/api/default/invites%0A", "/api/default/invites%7F",
    "http://example.com/api/default/invites",
]
# Refused by the HTTP parser itself (never reach the gateway's code): also 400.
UNPARSEABLE = [b"/api/default/invites\x00", b"/api/default/\xff", b"/api/default/\xc3\xa9"]


@pytest.mark.parametrize("path", AMBIGUOUS)
async def test_ambiguous_paths_are_400_and_not_forwarded(
    make_gateway: MakeGateway, upstream: RecordingUpstream, path: str
) -> None:
    """An encoded slash, backslash, NUL, invalid UTF-8 or climb above the root is 400 and never forwarded."""
    g: InProcess = await make_gateway()
    for method in ("POST", "GET"):
        response = await raw_request(g.proxy, method, path,
                                     headers={"Authorization": basic(g.token, g.secret)})
        assert response.status == 400, (method, response)
        assert problem(response)["title"] == "Bad request"
    assert upstream.seen == []


@pytest.mark.parametrize("path", UNPARSEABLE)
async def test_unparseable_request_targets_are_400_and_not_forwarded(
    make_gateway: MakeGateway, upstream: RecordingUpstream, path: bytes
) -> None:
    """Raw NUL and raw non-ASCII bytes in the target are refused by the HTTP parser before any rule runs."""
    g: InProcess = await make_gateway()
    response = await raw_request(g.proxy, "POST", path,
                                 headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 400
    assert upstream.seen == []


FORWARDED = {
    "/api/default//reports/./r1/../r2/": "/api/default/reports/r2/",
    "/api/default/r%7e1": "/api/default/r~1",
    "/api/default/%41BC/a%2a": "/api/default/ABC/a%2A",
    "/api/default/caf%c3%a9": "/api/default/caf%C3%A9",
    "/API/default/Reports": "/API/default/Reports",
    "/api/default/a;b=c/x": "/api/default/a;b=c/x",
    "/api/default/a[1]": "/api/default/a%5B1%5D",
    "//api///default/x/.": "/api/default/x/",
    "/api/default/reports?q=%2F&x=..%2F": "/api/default/reports?q=%2F&x=..%2F",
}


@pytest.mark.parametrize(("sent", "expected"), FORWARDED.items())
async def test_upstream_receives_exactly_the_path_the_rules_saw(
    make_gateway: MakeGateway, upstream: RecordingUpstream, caplog: pytest.LogCaptureFixture, sent: str, expected: str
) -> None:
    """The forwarded path is the normalised path the (dry-run) rule matched, byte for byte."""
    caplog.set_level(logging.INFO, logger="tokengate.proxy")
    watch = {"name": "watch-all", "path": "/**", "mode": "dry-run", "message": "watched"}
    g: InProcess = await make_gateway({"deny": [watch]})
    response = await raw_request(g.proxy, "GET", sent, headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 200, response
    path = expected.partition("?")[0]
    assert upstream.seen[-1].raw_path == expected
    assert normalize_path(sent.partition("?")[0]) == path
    seen_by_rules = [r.__dict__["path"] for r in caplog.records if getattr(r, "rule", None) == "watch-all"]
    assert seen_by_rules == [path]


async def test_format_suffix_spellings_are_denied_by_a_real_gateway(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """Through a real gateway process, every format suffix of issue 11 on a denied path is 403 and never forwarded."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    auth = {"Authorization": basic(*await process_token(gp))}
    for rule, path in [
        *(("create-invite", f"/api/default/invites{suffix}") for suffix in FORMAT_SUFFIXES),
        *(("clone-report-run", f"/api/default/reports/r1/runs/run9/clone{suffix}")
          for suffix in FORMAT_SUFFIXES),
    ]:
        response = await raw_request(gp.proxy, "POST", path, headers=auth)
        assert response.status == 403, (path, response)
        assert problem(response)["rule"] == rule, path
    assert upstream.seen == []
    # The same suffixes on a method no rule denies still reach the upstream.
    response = await raw_request(gp.proxy, "GET", "/api/default/invites.x-y", headers=auth)
    assert response.status == 200 and upstream.seen[-1].raw_path == "/api/default/invites.x-y"
