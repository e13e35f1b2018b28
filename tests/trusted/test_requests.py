"""Token requests end to end: the v1 form, bad bodies, the failed-key limit, quiet logs."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.credentials import bearer_well_formed
from tests.trusted.conftest import (
    KEY_FAILURE_LIMIT,
    REVOKE,
    V1,
    V2,
    VALIDATE,
    StartTrusted,
    Trusted,
)


async def test_v1_form_endpoint_returns_the_token_as_text(ta: Trusted) -> None:
    """The v1 form endpoint answers with a bare bearer token that works on the proxy."""
    key = await ta.enable()
    reply = await ta.post(V1, form={"secret_key": key, "username": "bob", "access_level": "FULL"})
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert bearer_well_formed(reply.text)
    assert (await ta.call(reply.text)).status == 200
    assert ta.seen_headers()["x-tokengate-user"] == "bob"
    other_key = await ta.enable("other")
    other = await ta.post(V1, form={"secret_key": other_key, "username": "oscar",
                                    "access_level": "FULL", "org_id": "other"})
    assert other.status == 200 and (await ta.call(other.text, "/api/other/x")).status == 200


@pytest.mark.parametrize(("form", "status", "field"), [
    ({"username": "bob", "access_level": "REPORT_BOOK_VIEW"}, 501, "access_level"),
    ({"username": "bob", "access_level": "ADMIN"}, 422, "access_level"),
    ({"username": "bob", "orgid": "default", "org_id": "other"}, 422, "orgid"),
    ({"username": "bob", "autocreate": "maybe"}, 422, "autocreate"),
    ({"username": "bob", "groups": "sales"}, 422, "groups"),
    ({"access_level": "FULL"}, 422, "username"),
    ({"username": "bob", "access_level": "FULL", "secret_key": ""}, 422, "secret_key"),
])
async def test_v1_form_refuses_bad_fields(ta: Trusted, form: dict[str, str], status: int,
                                          field: str) -> None:
    """A form with a missing, wrong or unsupported field is refused, naming the field."""
    key = await ta.enable()
    form = {"secret_key": key, **form}
    reply = await ta.post(V1, form=form)
    assert reply.status == status and reply.body["field"] == field
    assert key not in reply.text


async def test_v1_refuses_a_json_body(ta: Trusted) -> None:
    """The v1 endpoint takes a form, not JSON."""
    key = await ta.enable()
    reply = await ta.post(V1, json_body={"secret_key": key, "username": "bob"})
    assert reply.status == 400 and key not in reply.text


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"username": 7}, 422, "username"),
    ({"username": None}, 422, "username"),
    ({"secret_key": 12345}, 422, "secret_key"),
    ({"org_id": True}, 422, "org_id"),
    ({"org_id": "../x"}, 422, "org_id"),
    ({"validity_time_in_sec": "300"}, 422, "validity_time_in_sec"),
    ({"validity_time_in_sec": 0}, 400, "validity_time_in_sec"),
    ({"validity_time_in_sec": 86401}, 400, "validity_time_in_sec"),
    ({"auto_create": "yes"}, 422, "auto_create"),
])
async def test_v2_refuses_wrong_fields_naming_them(ta: Trusted, body: dict[str, Any],
                                                   status: int, field: str) -> None:
    """Wrong types are 422 and validity outside 1..max is 400; the detail names the field."""
    key = await ta.enable()
    reply = await ta.post(V2, json_body={"username": "bob", "secret_key": key, **body})
    assert reply.status == status, reply.body
    assert reply.body["field"] == field and field in reply.body["detail"]
    assert key not in reply.text


@pytest.mark.parametrize("raw", [b"not json", b"", b'["a list"]', b'"text"', b"null"])
async def test_v2_refuses_bodies_that_are_not_json_objects(ta: Trusted, raw: bytes) -> None:
    """A body that is not a JSON object is a 400 problem (revoke and validate may have none)."""
    for path in (V2, REVOKE, VALIDATE):
        if path != V2 and not raw:
            continue  # no body is how ThoughtSpot's clients revoke (test_thoughtspot_wire)
        reply = await ta.post(path, raw=raw, headers={"Content-Type": "application/json"})
        assert reply.status == 400
        assert reply.headers["Content-Type"] == "application/problem+json"


async def test_failed_key_attempts_are_limited_per_address(ta: Trusted) -> None:
    """Past the limit even the right key gets 429 with Retry-After; the refusals are audited
    as one event for the address and interval."""
    key = await ta.enable()
    for _ in range(KEY_FAILURE_LIMIT):
        reply = await ta.mint("0" * 8 + key[8:])
        assert reply.status == 401
    limited = await ta.mint(key)
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    refused = await ta.audit("trusted_auth.key_refused")
    assert len(refused) == 1
    assert refused[0]["workspace"] == "default" and refused[0]["detail"]["client"] == "127.0.0.1"
    assert refused[0]["detail"]["attempts_in_window"] == 1
    async with ta.session.get(ta.gp.admin + "/metrics") as resp:
        metrics = await resp.text()
    assert f'tokengate_trusted_key_failures_total{{workspace="default"}} ' \
           f'{float(KEY_FAILURE_LIMIT)}' in metrics


async def test_disabled_and_unknown_workspaces_refuse_any_key(ta: Trusted) -> None:
    """With trusted auth never enabled, every key is a plain 401 that names no key."""
    reply = await ta.mint("4f9c1a5e-3b7d-4c2a-9e8f-1a2b3c4d5e6f")
    assert reply.status == 401
    assert "4f9c1a5e" not in reply.text
    assert (await ta.mint("x", org_id="nowhere")).status == 401


async def test_the_key_and_bearers_never_reach_the_logs(start_trusted: StartTrusted) -> None:
    """At debug level, neither the key nor a bearer (nor a refused key) appears in the logs."""
    ta = await start_trusted(extra_env={"TOKENGATE_LOG_LEVEL": "debug"})
    key = await ta.enable()
    token = await ta.bearer(key)
    form = await ta.post(V1, form={"secret_key": key, "username": "bob", "access_level": "FULL"})
    await ta.call(token)
    await ta.mint(key, "nobody")
    await ta.mint(key, 12)  # type: ignore[arg-type]
    wrong = "11111111-2222-4333-8444-555555555555"
    await ta.mint(wrong)
    await ta.admin("GET", "/workspaces/default/trusted-auth")
    await ta.post(REVOKE, json_body={"token": token, "secret_key": key})
    logs = ta.gp.logs()
    assert "trusted bearer token minted" in logs
    for secret in (key, token, form.text, wrong):
        assert secret not in logs
