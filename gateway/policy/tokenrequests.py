"""ThoughtSpot token-request bodies, validated into values.

The v2 endpoints take JSON (``org_id``, ``auto_create``), the v1 endpoint a
form in ThoughtSpot's v1 names (``orgid``, ``autocreate``). Fields
ThoughtSpot ignores are ignored here too; fields it would act on but
tokengate cannot are either checked and documented as not applied
(``groups``) or refused with a 501 that says so (object-scoped access).

Error details name the field and never repeat a value: a body may hold a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.errors import BadRequest, Problem, Unprocessable
from gateway.policy.permissions import USERNAME, workspace_name
from gateway.policy.trusted import FULL_ACCESS

OBJECT_ACCESS = "REPORT_BOOK_VIEW"
MAX_ORG_ID = 2**31 - 1  # ThoughtSpot org ids are Java ints; 0 is the primary org
_ORG_NUMBER = re.compile(r"[0-9]{1,10}")
# Spring's spellings of a boolean request parameter (ThoughtSpot's v1 server).
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class NotImplementedHere(Problem):
    """501: a ThoughtSpot endpoint or option tokengate does not implement."""

    status = 501
    type_slug = "not-implemented"
    title = "Not implemented"


@dataclass(frozen=True, slots=True)
class OrgRef:
    """The org a request names: a workspace name, and a numeric org id if it is one.

    ThoughtSpot org ids are integers. A number finds the workspace that
    carries it (set when trusted auth is enabled); if none does, it is read
    as a workspace name, so a workspace called "42" still answers to it.
    """

    name: str
    number: int | None = None


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A validated request to mint a bearer token."""

    username: str
    secret_key: str = field(repr=False)
    org: OrgRef
    validity_seconds: int
    auto_create: bool = False


@dataclass(frozen=True, slots=True)
class RevokeRequest:
    """A validated request to revoke a bearer token.

    ``token`` None means the bearer in the Authorization header; with a
    ``secret_key`` the key of the workspace ``org`` names authorises it.
    ``user`` (ThoughtSpot's ``user_identifier``), if given, must be the
    token's user: tokengate revokes one token at a time, never silently
    fewer than a client asked for.
    """

    token: str | None = field(repr=False)
    secret_key: str | None = field(repr=False)
    org: OrgRef
    user: str | None = None


def _invalid(name: str, what: str) -> Unprocessable:
    return Unprocessable(f"{name}: {what}", extra={"field": name})


def org_id_number(value: object, name: str = "org_id") -> int:
    """A numeric org id as an admin sets it: an integer in ``0..2**31-1``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, "must be an integer")
    if not 0 <= value <= MAX_ORG_ID:
        raise _invalid(name, f"must be between 0 and {MAX_ORG_ID}")
    return value


def org_ref(org_id: object, default: str, *, name: str = "org_id") -> OrgRef:
    """The org an ``org_id`` (workspace name or numeric org id) names; the default if absent."""
    if org_id is None:
        return OrgRef(default)
    if isinstance(org_id, bool) or not isinstance(org_id, (int, str)):
        raise _invalid(name, "must be a string or an integer")
    text = str(org_id)
    number = int(text) if _ORG_NUMBER.fullmatch(text) else None
    workspace = workspace_name(text)  # "Acme" is "acme", as everywhere
    if workspace is None:
        raise _invalid(name, "not a valid workspace name or org id")
    return OrgRef(workspace, number if number is not None and number <= MAX_ORG_ID else None)


def validity_seconds(requested: object, *, default: int, maximum: int) -> int:
    """The token lifetime: the default if absent, else an integer in ``1..maximum``."""
    if requested is None:
        return default
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise _invalid("validity_time_in_sec", "must be an integer")
    if not 1 <= requested <= maximum:
        raise BadRequest(f"validity_time_in_sec: must be between 1 and {maximum}",
                         extra={"field": "validity_time_in_sec"})
    return requested


def _username(value: object) -> str:
    if value is None:
        raise _invalid("username", "required")
    if not isinstance(value, str):
        raise _invalid("username", "must be a string")
    if not USERNAME.fullmatch(value):
        raise _invalid("username", "1-64 of letters, digits and _.@+- (not first)")
    return value


def _secret_key(value: object) -> str:
    if value is None or value == "":
        raise _invalid("secret_key", "required")
    if not isinstance(value, str):
        raise _invalid("secret_key", "must be a string")
    return value


def _object(data: object) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _form_bool(value: str | None, name: str) -> bool:
    if not value:
        return False
    folded = value.strip().lower()
    if folded not in _TRUE | _FALSE:
        raise _invalid(name, "must be true or false")
    return folded in _TRUE


def _check_groups(value: str | None) -> None:
    # ThoughtSpot puts an auto-created user in these groups; tokengate has
    # none (the user is a member of the workspace), so they are only checked.
    if not value:
        return
    try:
        groups = json.loads(value)
    except ValueError:
        groups = None
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise _invalid("groups", 'must be a JSON array of group names, e.g. ["sales"]')


def token_request_from_json(data: object, *, default_workspace: str, default_validity: int,
                            max_validity: int) -> TokenRequest:
    """Validate a v2 ``/auth/token/full`` body (unknown fields are ignored, as ThoughtSpot's)."""
    body = _object(data)
    auto_create = body.get("auto_create")
    if auto_create is not None and not isinstance(auto_create, bool):
        raise _invalid("auto_create", "must be a boolean")
    return TokenRequest(
        username=_username(body.get("username")),
        secret_key=_secret_key(body.get("secret_key")),
        org=org_ref(body.get("org_id"), default_workspace),
        validity_seconds=validity_seconds(body.get("validity_time_in_sec"),
                                          default=default_validity, maximum=max_validity),
        auto_create=bool(auto_create),
    )


def token_request_from_form(fields: Mapping[str, str], *, default_workspace: str,
                            default_validity: int) -> TokenRequest:
    """Validate a v1 ``session/auth/token`` form, in ThoughtSpot's v1 field names.

    ``orgid`` (``org_id`` is an alias) and ``autocreate`` as ThoughtSpot reads
    them; ``access_level`` FULL (REPORT_BOOK_VIEW is 501); ``groups`` checked,
    not applied; ``id`` (the object of a REPORT_BOOK_VIEW token) ignored.
    """
    access = (fields.get("access_level") or FULL_ACCESS).strip().upper()
    if access == OBJECT_ACCESS:
        raise NotImplementedHere(
            "access_level REPORT_BOOK_VIEW (a token for one object) is not implemented: "
            "tokengate mints FULL access tokens only", extra={"field": "access_level"})
    if access != FULL_ACCESS:
        raise _invalid("access_level", "must be FULL")
    orgid, alias = fields.get("orgid") or None, fields.get("org_id") or None
    if orgid is not None and alias is not None and orgid != alias:
        raise _invalid("orgid", "differs from org_id (send one of them)")
    _check_groups(fields.get("groups"))
    return TokenRequest(
        username=_username(fields.get("username")),
        secret_key=_secret_key(fields.get("secret_key")),
        org=org_ref(orgid or alias, default_workspace,
                    name="orgid" if orgid is not None else "org_id"),
        validity_seconds=default_validity,
        auto_create=_form_bool(fields.get("autocreate"), "autocreate"),
    )


def revoke_request_from_json(data: object, *, default_workspace: str) -> RevokeRequest:
    """Validate a v2 ``/auth/token/revoke`` body (``{}`` when the request has none)."""
    body = _object(data)
    key = body.get("secret_key")
    user = body.get("user_identifier")
    if user is not None and not isinstance(user, str):
        raise _invalid("user_identifier", "must be a string")
    return RevokeRequest(
        token=_optional_token(body),
        secret_key=None if key is None else _secret_key(key),
        org=org_ref(body.get("org_id"), default_workspace),
        user=user or None,
    )


def validate_request_from_json(data: object) -> str | None:
    """The ``token`` of a v2 ``/auth/token/validate`` body, if it names one."""
    return _optional_token(_object(data))


def _optional_token(body: Mapping[str, Any]) -> str | None:
    token = body.get("token")
    if token is not None and not isinstance(token, str):
        raise _invalid("token", "must be a string")
    return token or None
