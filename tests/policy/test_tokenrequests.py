"""ThoughtSpot token-request bodies: v2 JSON, the v1 form in ThoughtSpot's names, org ids."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.errors import BadRequest, Problem, Unprocessable
from gateway.policy.tokenrequests import (
    MAX_ORG_ID,
    NotImplementedHere,
    OrgRef,
    TokenRequest,
    org_id_number,
    org_ref,
    revoke_request_from_json,
    token_request_from_form,
    token_request_from_json,
    validate_request_from_json,
    validity_seconds,
)

LIMITS: dict[str, Any] = {"default_workspace": "default", "default_validity": 300,
                         "max_validity": 3600}
FORM: dict[str, Any] = {"default_workspace": "default", "default_validity": 300}


@pytest.mark.parametrize(("org_id", "ref"), [
    (None, OrgRef("default")),
    ("acme", OrgRef("acme")),
    ("Acme", OrgRef("acme")),
    ("ACME", OrgRef("acme")),
    (0, OrgRef("0", 0)),
    (42, OrgRef("42", 42)),
    ("42", OrgRef("42", 42)),
    ("007", OrgRef("007", 7)),
    (MAX_ORG_ID, OrgRef(str(MAX_ORG_ID), MAX_ORG_ID)),
    (MAX_ORG_ID + 1, OrgRef(str(MAX_ORG_ID + 1))),
    ("1e3", OrgRef("1e3")),
])
def test_org_ref_reads_names_and_numbers(org_id: object, ref: OrgRef) -> None:
    """org_id is a workspace name, and also a numeric org id when it is digits in range."""
    assert org_ref(org_id, "default") == ref


@pytest.mark.parametrize("org_id", [True, 1.5, [], {}, "", "-1", "../x", "a b", -3, "٤٢"])
def test_org_ref_refuses_other_values(org_id: object) -> None:
    """Anything else is 422 naming the field."""
    with pytest.raises(Unprocessable) as info:
        org_ref(org_id, "default")
    assert info.value.extra["field"] == "org_id"


@pytest.mark.parametrize(("value", "ok"), [
    (0, True), (123, True), (MAX_ORG_ID, True),
    (-1, False), (MAX_ORG_ID + 1, False), ("1", False), (True, False), (1.0, False),
])
def test_org_id_number(value: object, ok: bool) -> None:
    """An org id an admin sets is an integer in 0..2**31-1; else 422 naming the field."""
    if ok:
        assert org_id_number(value) == value
    else:
        with pytest.raises(Unprocessable) as info:
            org_id_number(value, "--org-id")
        assert info.value.detail.startswith("--org-id: ")


@pytest.mark.parametrize(("requested", "result", "error"), [
    (None, 300, None), (1, 1, None), (3600, 3600, None),
    (0, None, BadRequest), (-5, None, BadRequest), (3601, None, BadRequest),
    ("60", None, Unprocessable), (60.0, None, Unprocessable), (True, None, Unprocessable),
])
def test_validity_seconds(requested: object, result: int | None,
                          error: type[Problem] | None) -> None:
    """The default when absent; 1..max allowed; outside is 400; a non-integer is 422."""
    if error is None:
        assert validity_seconds(requested, default=300, maximum=3600) == result
    else:
        with pytest.raises(error) as info:
            validity_seconds(requested, default=300, maximum=3600)
        assert info.value.extra["field"] == "validity_time_in_sec"


def test_json_request_with_every_field() -> None:
    """A full v2 body becomes a request; unknown fields are ignored, as ThoughtSpot's."""
    body = {"username": "bob", "secret_key": "k", "org_id": 7, "validity_time_in_sec": 60,
            "auto_create": True, "persist_option": "NONE", "display_name": "Bob",
            "email": "bob@example.com", "group_identifiers": ["sales"]}
    assert token_request_from_json(body, **LIMITS) == \
        TokenRequest("bob", "k", OrgRef("7", 7), 60, True)
    assert token_request_from_json({"username": "bob", "secret_key": "k"}, **LIMITS) == \
        TokenRequest("bob", "k", OrgRef("default"), 300, False)


@pytest.mark.parametrize(("body", "error", "field"), [
    ([], BadRequest, None),
    ("x", BadRequest, None),
    (None, BadRequest, None),
    ({"secret_key": "k"}, Unprocessable, "username"),
    ({"username": 1, "secret_key": "k"}, Unprocessable, "username"),
    ({"username": " bob", "secret_key": "k"}, Unprocessable, "username"),
    ({"username": "bob"}, Unprocessable, "secret_key"),
    ({"username": "bob", "secret_key": ""}, Unprocessable, "secret_key"),
    ({"username": "bob", "secret_key": ["k"]}, Unprocessable, "secret_key"),
    ({"username": "bob", "secret_key": "k", "auto_create": 1}, Unprocessable, "auto_create"),
    ({"username": "bob", "secret_key": "k", "org_id": True}, Unprocessable, "org_id"),
    ({"username": "bob", "secret_key": "k", "validity_time_in_sec": 0}, BadRequest,
     "validity_time_in_sec"),
])
def test_json_request_refusals(body: Any, error: type[Problem], field: str | None) -> None:
    """Not an object is 400; a missing or wrong field is named, and the key is never echoed."""
    with pytest.raises(error) as info:
        token_request_from_json(body, **LIMITS)
    assert info.value.extra.get("field") == field
    assert "'k'" not in info.value.detail


# (form fields besides username and secret_key, the request's org and auto_create, why)
FORMS: list[tuple[dict[str, str], OrgRef, bool, str]] = [
    ({}, OrgRef("default"), False, "nothing else: the default workspace"),
    ({"orgid": "123"}, OrgRef("123", 123), False, "ThoughtSpot's orgid"),
    ({"orgid": "0"}, OrgRef("0", 0), False, "the primary org"),
    ({"org_id": "acme"}, OrgRef("acme"), False, "org_id is an alias"),
    ({"orgid": "acme", "org_id": "acme"}, OrgRef("acme"), False, "both, agreeing"),
    ({"orgid": "", "org_id": ""}, OrgRef("default"), False, "empty means absent"),
    ({"autocreate": "true"}, OrgRef("default"), True, "autocreate"),
    ({"autocreate": "TRUE"}, OrgRef("default"), True, "any case"),
    ({"autocreate": "false"}, OrgRef("default"), False, "autocreate false"),
    ({"autocreate": "1"}, OrgRef("default"), True, "Spring's 1"),
    ({"autocreate": ""}, OrgRef("default"), False, "empty autocreate"),
    ({"access_level": "full"}, OrgRef("default"), False, "FULL in any case"),
    ({"groups": '["sales", "emea"]'}, OrgRef("default"), False, "groups are checked only"),
    ({"groups": "[]"}, OrgRef("default"), False, "no groups"),
    ({"id": "0a1b2c3d-guid"}, OrgRef("default"), False, "id is for object tokens: ignored"),
    ({"auto_create": "true"}, OrgRef("default"), False, "v2's name is not v1's: ignored"),
    ({"rememberme": "true"}, OrgRef("default"), False, "other fields are ignored"),
]


@pytest.mark.parametrize(("extra", "org", "auto_create", "why"), FORMS,
                         ids=[f[3] for f in FORMS])
def test_form_request_in_thoughtspots_names(extra: dict[str, str], org: OrgRef,
                                            auto_create: bool, why: str) -> None:
    """The v1 form reads orgid (org_id too) and autocreate as ThoughtSpot's clients send them."""
    form = {"username": "bob", "secret_key": "k", **extra}
    assert token_request_from_form(form, **FORM) == TokenRequest("bob", "k", org, 300,
                                                                 auto_create)


@pytest.mark.parametrize(("extra", "field"), [
    ({"orgid": "acme", "org_id": "other"}, "orgid"),
    ({"orgid": "../x"}, "orgid"),
    ({"org_id": "a b"}, "org_id"),
    ({"autocreate": "maybe"}, "autocreate"),
    ({"groups": "sales"}, "groups"),
    ({"groups": '{"a": 1}'}, "groups"),
    ({"groups": "[1, 2]"}, "groups"),
    ({"access_level": "ADMIN"}, "access_level"),
])
def test_form_refusals(extra: dict[str, str], field: str) -> None:
    """A bad v1 field is 422 naming it (as ThoughtSpot's own name)."""
    with pytest.raises(Unprocessable) as info:
        token_request_from_form({"username": "bob", "secret_key": "k", **extra}, **FORM)
    assert info.value.extra["field"] == field


def test_object_access_is_not_implemented() -> None:
    """access_level REPORT_BOOK_VIEW (a token for one object) is a 501 that says so."""
    with pytest.raises(NotImplementedHere) as info:
        token_request_from_form({"username": "bob", "secret_key": "k", "id": "guid",
                                 "access_level": "REPORT_BOOK_VIEW"}, **FORM)
    assert info.value.status == 501
    assert "REPORT_BOOK_VIEW" in info.value.detail and "FULL" in info.value.detail


@pytest.mark.parametrize(("body", "token", "key", "org", "user"), [
    ({"token": "t"}, "t", None, OrgRef("default"), None),
    ({}, None, None, OrgRef("default"), None),
    ({"token": "t", "secret_key": "k", "org_id": "acme"}, "t", "k", OrgRef("acme"), None),
    ({"token": "t", "secret_key": "k", "org_id": 0}, "t", "k", OrgRef("0", 0), None),
    ({"token": "", "user_identifier": "bob"}, None, None, OrgRef("default"), "bob"),
])
def test_revoke_request(body: dict[str, Any], token: str | None, key: str | None,
                        org: OrgRef, user: str | None) -> None:
    """A revoke body names the token and, optionally, the key, the org and the user."""
    req = revoke_request_from_json(body, default_workspace="default")
    assert (req.token, req.secret_key, req.org, req.user) == (token, key, org, user)
    with pytest.raises(Unprocessable):
        revoke_request_from_json({"user_identifier": 5}, default_workspace="default")


@pytest.mark.parametrize(("body", "token"), [({}, None), ({"token": "t"}, "t"),
                                             ({"token": ""}, None)])
def test_validate_request(body: dict[str, Any], token: str | None) -> None:
    """A validate body may name the token (it must be the presented one)."""
    assert validate_request_from_json(body) == token
    with pytest.raises(Unprocessable):
        validate_request_from_json({"token": 5})
    with pytest.raises(BadRequest):
        validate_request_from_json([])


def test_secrets_stay_out_of_reprs() -> None:
    """The key shows in no request's repr."""
    assert "sekrit-key" not in repr(TokenRequest("bob", "sekrit-key", OrgRef("acme"), 60))
    with pytest.raises(Unprocessable):
        revoke_request_from_json({"token": 5}, default_workspace="default")
