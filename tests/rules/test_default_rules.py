"""The shipped deny rules and workspace scoping, end to end through a real gateway."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.policy.rules import DEFAULT_RULES
from tests.conftest import InProcess, RecordingUpstream, basic
from tests.rules.support import (
    GatewayFactory,
    MakeGateway,
    member_token,
    personal_token,
    problem,
    process_token,
    raw_request,
)

CLONE = "/api/default/reports/r1/runs/run9/clone"
INVITES = "/api/default/invites"
MESSAGES = {rule["name"]: rule["message"] for rule in DEFAULT_RULES}
FUTURE_CUTOFF = {"personal_tokens": {"cutoff": "2999-12-31"}}


async def credentials(g: InProcess, kind: str) -> tuple[str, str]:
    """A token of ``kind`` ("workspace", "member" or "personal") and its secret."""
    if kind == "workspace":
        return g.token, g.secret
    if kind == "member":
        return await member_token(g)
    return await personal_token(g)


@pytest.mark.parametrize("kind", ["workspace", "member"])
@pytest.mark.parametrize(("rule", "path"), [("clone-report-run", CLONE), ("create-invite", INVITES)])
async def test_default_rules_deny_workspace_and_member_tokens(
    make_gateway: MakeGateway, upstream: RecordingUpstream, kind: str, rule: str, path: str
) -> None:
    """POSTing to a default-denied endpoint with a workspace or member token is 403 naming the rule, never forwarded."""
    g: InProcess = await make_gateway()
    token, secret = await credentials(g, kind)
    response = await raw_request(g.proxy, "POST", path, body=b"{}",
                                 headers={"Authorization": basic(token, secret)})
    assert response.status == 403
    body = problem(response)
    assert body["detail"] == MESSAGES[rule]
    assert body["rule"] == rule
    assert upstream.seen == []


@pytest.mark.parametrize("path", [CLONE, INVITES])
async def test_personal_tokens_pass_the_default_rules(
    make_gateway: MakeGateway, upstream: RecordingUpstream, path: str
) -> None:
    """The default rules name workspace and member tokens only, so a personal token's POST is forwarded."""
    g: InProcess = await make_gateway(FUTURE_CUTOFF)
    token, secret = await personal_token(g)
    response = await raw_request(g.proxy, "POST", path, headers={"Authorization": basic(token, secret)})
    assert response.status == 200
    assert [(s.method, s.raw_path) for s in upstream.seen] == [("POST", path)]


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("kind", ["workspace", "member"])
async def test_other_methods_on_denied_paths_pass(
    make_gateway: MakeGateway, upstream: RecordingUpstream, method: str, kind: str
) -> None:
    """The default rules deny POST only: other methods on the same paths reach the upstream."""
    g: InProcess = await make_gateway()
    token, secret = await credentials(g, kind)
    for path in (CLONE, INVITES):
        response = await raw_request(g.proxy, method, path,
                                     headers={"Authorization": basic(token, secret)})
        assert response.status == 200, (method, path, response)
    assert [(s.method, s.raw_path) for s in upstream.seen] == [(method, CLONE), (method, INVITES)]


async def test_neighbouring_paths_are_not_denied(make_gateway: MakeGateway, upstream: RecordingUpstream) -> None:
    """A rule matches its own endpoint only: longer, shorter and sibling paths are forwarded."""
    g: InProcess = await make_gateway()
    paths = ["/api/default/invites/abc", "/api/default/invitesx", "/api/default/reports/r1/runs/run9",
             "/api/default/reports/r1/runs/run9/clone/more", "/api/default/reports/r1/clone",
             "/invites"]
    for path in paths:
        response = await raw_request(g.proxy, "POST", path,
                                     headers={"Authorization": basic(g.token, g.secret)})
        assert response.status == 200, (path, response)
    assert [s.raw_path for s in upstream.seen] == paths


async def test_empty_deny_list_switches_the_defaults_off(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """``deny = []`` in config means no rules at all, so a workspace token may create invites."""
    g: InProcess = await make_gateway({"deny": []})
    response = await raw_request(g.proxy, "POST", INVITES,
                                 headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 200 and upstream.seen[-1].raw_path == INVITES


@pytest.mark.parametrize("path", [
    "/api/other/reports", "/api/other/invites", "/api/other", "/api/other/",
    "/api/oth%65r/reports", "/API/Other/reports", "/api/default/../other/reports",
    "/api//other/reports", "/api/default;x/reports",
    "/api/DEFAULT/reports", "/api/Default/reports", "/api/%44efault/reports",
])
async def test_request_naming_another_workspace_is_refused(
    make_gateway: MakeGateway, upstream: RecordingUpstream, path: str
) -> None:
    """A token of workspace ``default`` gets 403 for any spelling of a path that names another workspace, or its own in another case."""
    g: InProcess = await make_gateway()
    response = await raw_request(g.proxy, "GET", path, headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 403
    assert problem(response)["rule"] == "workspace-scope"
    assert upstream.seen == []


@pytest.mark.parametrize("path", ["/api/default/reports", "/API/default/Reports", "/api/d%65fault/x",
                                  "/api", "/api/", "/health", "/"])
async def test_own_workspace_and_unscoped_paths_pass(
    make_gateway: MakeGateway, upstream: RecordingUpstream, path: str
) -> None:
    """Paths naming the token's own workspace (exactly; other literals any case) or no workspace at all are forwarded."""
    g: InProcess = await make_gateway()
    response = await raw_request(g.proxy, "GET", path, headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 200, response
    assert len(upstream.seen) == 1


async def test_workspace_names_are_one_case(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """Through a real gateway, "Acme" created after "acme" is the same workspace, and an acme token is refused on /api/Acme/... ."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)

    def call(method: str, path: str, body: object = None) -> dict[str, Any]:
        status, answer = gp.admin_call(method, path, body)
        assert status in (200, 201), (path, answer)
        return answer

    ann = await asyncio.to_thread(call, "POST", "/admin/api/users",
                                  {"username": "ann", "role": "admin", "workspace": "acme"})
    bob = await asyncio.to_thread(call, "POST", "/admin/api/users",
                                  {"username": "bob", "role": "admin", "workspace": "Acme"})
    assert ann["workspace"] == bob["workspace"] == "acme"
    listed = await asyncio.to_thread(call, "GET", "/admin/api/users?workspace=ACME")
    assert {u["username"] for u in listed["users"]} == {"ann", "bob"}
    token, secret = await process_token(gp, workspace="ACME")
    auth = {"Authorization": basic(token, secret)}
    for path in ("/api/Acme/reports", "/api/ACME/reports", "/api/%41cme/reports"):
        response = await raw_request(gp.proxy, "GET", path, headers=auth)
        assert response.status == 403, (path, response)
        assert problem(response)["rule"] == "workspace-scope"
    assert upstream.seen == []
    response = await raw_request(gp.proxy, "GET", "/api/acme/reports", headers=auth)
    assert response.status == 200
    assert dict(upstream.seen[-1].headers)["X-Tokengate-Workspace"] == "acme"
    # Trusted auth: enabled as "Acme", read back as "acme"; an org_id of "ACME" mints for acme.
    key = (await asyncio.to_thread(call, "PUT", "/admin/api/workspaces/Acme/trusted-auth"))["secret_key"]
    assert (await asyncio.to_thread(call, "GET", "/admin/api/workspaces/acme/trusted-auth"))["secret_key"] == key
    body = json.dumps({"username": "ann", "secret_key": key, "org_id": "ACME"}).encode()
    minted = await raw_request(gp.proxy, "POST", "/api/rest/2.0/auth/token/full", body=body,
                               headers={"Content-Type": "application/json"})
    assert minted.status == 200, minted
    bearer = {"Authorization": "Bearer " + minted.json()["token"]}
    assert (await raw_request(gp.proxy, "GET", "/api/acme/x", headers=bearer)).status == 200
    assert (await raw_request(gp.proxy, "GET", "/api/Acme/x", headers=bearer)).status == 403
