"""ThoughtSpot's own Python client (``thoughtspot_rest_api``) against a real gateway.

The client is ThoughtSpot field engineering's published library, unchanged:
it mints a full-access token, calls the REST API v2 through to the upstream
with it, validates and revokes it, and asks v1 ``session/auth/token`` with
``orgid``. Its calls are blocking (requests), so each runs in a thread while
the recording upstream answers on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import requests
from thoughtspot_rest_api import TSRestApiV1, TSRestApiV2

from tests.trusted.conftest import Trusted

T = TypeVar("T")


async def blocking(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run one of the client's blocking calls off the event loop."""
    return await asyncio.to_thread(fn, *args, **kw)


def upstream_saw(answer: dict[str, Any]) -> dict[str, str]:
    """The headers the recording upstream echoed back (lower-case names)."""
    return {k.lower(): v for k, v in answer["headers"].items()}


async def status_of(fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[int, Any]:
    """The HTTP status the client raised for (and the problem body)."""
    with pytest.raises(requests.HTTPError) as info:
        await blocking(fn, *args, **kw)
    response = info.value.response
    assert response is not None
    return response.status_code, response.json()


async def test_v2_client_mints_calls_validates_and_revokes(ta: Trusted) -> None:
    """A bearer from auth/token/full works on the REST API v2 (not read as workspace "rest"),
    validates with ThoughtSpot's fields, and after auth/token/revoke with no body is a 401."""
    key = await ta.enable(org_id=0)
    ts = TSRestApiV2(ta.gp.proxy)
    minted = await blocking(ts.auth_token_full, username="bob", secret_key=key, org_id=0,
                            validity_time_in_sec=600)
    assert minted["valid_for_username"] == "bob"
    ts.bearer_token = minted["token"]

    user = await blocking(ts.auth_session_user)
    assert user["path"] == "/api/rest/2.0/auth/session/user"
    seen = upstream_saw(user)
    assert (seen["x-tokengate-user"], seen["x-tokengate-workspace"]) == ("bob", "default")
    assert seen["x-tokengate-token-type"] == "trusted" and "authorization" not in seen
    found = await blocking(ts.post_request, "metadata/search",
                           {"metadata": [{"type": "LIVEBOARD"}]})
    assert found["method"] == "POST" and found["path"] == "/api/rest/2.0/metadata/search"

    valid = await blocking(ts.post_request, "auth/token/validate", {"token": minted["token"]})
    assert valid == {
        "creation_time_in_millis": minted["creation_time_in_millis"],
        "expiration_time_in_millis": minted["expiration_time_in_millis"],
        "scope": {"access_type": "FULL", "org_id": 0},
        "valid_for_user_id": minted["valid_for_user_id"],
        "token_type": "BEARER",
    }
    await blocking(ts.auth_token_validate, minted["token"])  # the client's own wrapper

    before = len(ta.upstream.seen)
    assert await blocking(ts.auth_token_revoke) is True
    status, problem = await status_of(ts.auth_session_user)
    assert status == 401 and problem["status"] == 401
    status, _ = await status_of(ts.post_request, "auth/token/validate",
                                {"token": minted["token"]})
    assert status == 401
    assert len(ta.upstream.seen) == before  # the token endpoints never reach the upstream
    (event,) = await ta.audit("trusted_auth.token_revoked")
    assert event["actor"] == "bob" and event["detail"]["by"] == "bearer"


async def test_v1_client_session_auth_token_with_orgid(ta: Trusted) -> None:
    """session/auth/token with orgid (an integer org id) mints a token of that workspace,
    which the v1 REST API accepts; an unknown org id is 401."""
    other_key = await ta.enable("other", org_id=123)
    await ta.enable()
    v1 = TSRestApiV1(ta.gp.proxy)
    token = await blocking(v1.session_auth_token, secret_key=other_key, username="oscar",
                           org_id=123)
    v1.bearer_token = token
    info = await blocking(v1.session_info)
    assert info["path"] == "/callosum/v1/tspublic/v1/session/info"
    assert upstream_saw(info)["x-tokengate-workspace"] == "other"
    status, problem = await status_of(v1.session_auth_token, secret_key=other_key,
                                      username="oscar", org_id=999)
    assert status == 401 and other_key not in str(problem)


async def test_v1_client_autocreate_with_groups(ta: Trusted) -> None:
    """autocreate=true (with groups, which tokengate checks but has none of) creates the
    user as a member of the org's workspace, as ThoughtSpot's just-in-time provisioning."""
    key = await ta.enable("other", org_id=7)
    v1 = TSRestApiV1(ta.gp.proxy)
    token = await blocking(v1.session_auth_token, secret_key=key, username="newbie",
                           org_id=7, groups=["sales"], auto_create_user=True)
    users = (await ta.admin("GET", "/users?workspace=other")).body["users"]
    assert {"username": "newbie", "role": "member", "workspace": "other"}.items() \
        <= next(u for u in users if u["username"] == "newbie").items()
    v1.bearer_token = token
    assert upstream_saw(await blocking(v1.session_info))["x-tokengate-user"] == "newbie"
    status, _ = await status_of(v1.session_auth_token, secret_key=key, username="nobody",
                                org_id=7, auto_create_user=False)
    assert status == 404


@pytest.mark.parametrize("call", ["auth_token_object", "auth_token_custom"])
async def test_unimplemented_token_endpoints_are_501_naming_themselves(
        ta: Trusted, call: str) -> None:
    """auth/token/object and auth/token/custom answer 501 naming the endpoint, not a 401."""
    key = await ta.enable()
    ts = TSRestApiV2(ta.gp.proxy)
    kw: dict[str, Any] = {"object_id": "0a1b"} if call == "auth_token_object" else {}
    status, problem = await status_of(getattr(ts, call), username="bob", secret_key=key, **kw)
    endpoint = "/api/rest/2.0/auth/token/" + call.removeprefix("auth_token_")
    assert status == 501
    assert problem["endpoint"] == endpoint and endpoint in problem["detail"]
    assert "/api/rest/2.0/auth/token/full" in problem["detail"] and key not in str(problem)
