"""validate and revoke as ThoughtSpot's clients send them, and the REST paths beside Mode's."""

from __future__ import annotations

import aiohttp

from tests.conftest import basic
from tests.trusted.conftest import REVOKE, VALIDATE, Trusted


async def _post(ta: Trusted, path: str, headers: dict[str, str],
                data: bytes | None = None) -> tuple[int, str]:
    async with ta.session.post(ta.gp.proxy + path, data=data, headers=headers,
                               skip_auto_headers=["Content-Type"]) as resp:
        return resp.status, await resp.text()


async def test_revoke_with_no_body_revokes_the_presented_bearer(ta: Trusted) -> None:
    """POST revoke with only ``Authorization: Bearer`` (no body, no Content-Type) is 204,
    and the bearer is 401 from then on, on the proxy, on revoke and on validate."""
    key = await ta.enable()
    token = await ta.bearer(key)
    auth = {"Authorization": f"Bearer {token}"}
    assert (await ta.call(token, "/api/rest/2.0/auth/session/user")).status == 200
    assert (await _post(ta, REVOKE, auth))[0] == 204
    assert (await ta.call(token, "/api/rest/2.0/auth/session/user")).status == 401
    assert (await _post(ta, REVOKE, auth))[0] == 401
    assert (await _post(ta, VALIDATE, auth))[0] == 401


async def test_revoke_with_an_empty_json_body(ta: Trusted) -> None:
    """An empty body declared as JSON (some clients send that) is no body: 204."""
    key = await ta.enable()
    token = await ta.bearer(key)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert (await _post(ta, REVOKE, headers, b""))[0] == 204
    assert (await ta.call(token)).status == 401


async def test_revoke_without_any_credential_is_401_saying_what_to_send(ta: Trusted) -> None:
    """No bearer and no secret_key: 401 naming both ways."""
    status, text = await _post(ta, REVOKE, {})
    assert status == 401 and "bearer token to revoke, or the secret_key" in text


async def test_validate_answers_for_the_presented_bearer(ta: Trusted) -> None:
    """validate with the bearer (body token optional, but then the same) answers its times,
    user and FULL scope; without an org id the scope has none."""
    key = await ta.enable()
    minted = (await ta.mint(key, validity_time_in_sec=120)).body
    auth = {"Authorization": f"Bearer {minted['token']}"}
    for body in (None, {}, {"token": minted["token"]}):
        async with ta.session.post(ta.gp.proxy + VALIDATE, json=body, headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            doc = await resp.json()
        assert doc == {
            "creation_time_in_millis": minted["creation_time_in_millis"],
            "expiration_time_in_millis": minted["expiration_time_in_millis"],
            "scope": {"access_type": "FULL"},
            "valid_for_user_id": minted["valid_for_user_id"],
            "token_type": "BEARER",
        }
    assert (await ta.call(minted["token"])).status == 200  # validating is not revoking


async def test_validate_refusals(ta: Trusted) -> None:
    """No bearer, a Basic credential or a made-up bearer is 401; naming another token than
    the presented one is 403, and neither token is echoed."""
    key = await ta.enable()
    token, other = await ta.bearer(key), await ta.bearer(key, "alice")
    status, text = await _post(ta, VALIDATE, {})
    assert status == 401 and "bearer token to validate" in text
    workspace = await ta.admin("POST", "/tokens", {"type": "workspace", "name": "ci"})
    status, _ = await _post(ta, VALIDATE, {"Authorization": basic(workspace.body["token"],
                                                                  workspace.body["secret"])})
    assert status == 401
    status, _ = await _post(ta, VALIDATE, {"Authorization": "Bearer tgb_" + "x" * 40})
    assert status == 401
    async with ta.session.post(ta.gp.proxy + VALIDATE, json={"token": other},
                               headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 403
        text = await resp.text()
    assert token not in text and other not in text


# (path, status for a bearer of workspace "default", why)
PATHS = [
    ("/api/rest/2.0/auth/session/user", 200, "ThoughtSpot v2: names no workspace"),
    ("/api/rest/2.0/metadata/search", 200, "another v2 path"),
    ("/API/REST/2.0/users/search", 200, "in another case"),
    ("/callosum/v1/tspublic/v1/session/info", 200, "ThoughtSpot v1"),
    ("/api/default/reports", 200, "own Mode workspace"),
    ("/api/other/reports", 403, "another Mode workspace"),
    ("/api/rest/reports", 403, "a Mode workspace named rest is not everyone's"),
]


async def test_rest_api_and_mode_paths_side_by_side(ta: Trusted) -> None:
    """With the default config one bearer reaches every ThoughtSpot REST path and its own
    Mode workspace, and gets 403 workspace-scope wherever a path names another."""
    key = await ta.enable()
    token = await ta.bearer(key)
    for path, status, why in PATHS:
        reply = await ta.call(token, path)
        assert reply.status == status, (path, why, reply.body)
        if status == 403:
            assert reply.body["rule"] == "workspace-scope", why
        else:
            assert ta.seen_headers()["x-tokengate-workspace"] == "default", why


async def test_a_workspace_token_reaches_the_rest_api_too(ta: Trusted) -> None:
    """Basic workspace tokens are not workspace-scoped on the REST API v2 either."""
    created = await ta.admin("POST", "/tokens", {"type": "workspace", "name": "ci",
                                                 "workspace": "other"})
    auth = basic(created.body["token"], created.body["secret"])
    async with aiohttp.ClientSession() as session:
        for path, status in (("/api/rest/2.0/metadata/search", 200),
                             ("/api/default/reports", 403), ("/api/other/reports", 200)):
            async with session.get(ta.gp.proxy + path, headers={"Authorization": auth}) as r:
                assert r.status == status, path


async def test_revoke_names_the_user_it_revokes_for(ta: Trusted) -> None:
    """user_identifier must be the token's user: another user's is refused (403 with the
    bearer, 404 with the key) and nothing is revoked; the token's own user revokes it."""
    key = await ta.enable()
    token = await ta.bearer(key)
    auth = {"Authorization": f"Bearer {token}"}
    async with ta.session.post(ta.gp.proxy + REVOKE, json={"user_identifier": "alice"},
                               headers=auth) as resp:
        assert resp.status == 403
    keyed = await ta.post(REVOKE, json_body={"token": token, "secret_key": key,
                                             "user_identifier": "alice"})
    assert keyed.status == 404
    assert (await ta.call(token)).status == 200
    async with ta.session.post(ta.gp.proxy + REVOKE, json={"user_identifier": "bob"},
                               headers=auth) as resp:
        assert resp.status == 204
    assert (await ta.call(token)).status == 401
