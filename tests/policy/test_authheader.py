"""Parsing the Authorization header: everything malformed is a 401 before any lookup."""

from __future__ import annotations

import base64

import pytest

from gateway.policy import credentials as c
from gateway.policy.authheader import BasicCredentials, BearerCredentials, parse_authorization
from gateway.policy.errors import Unauthenticated
from gateway.policy.model import TokenType

TOKEN = c.new_token(TokenType.WORKSPACE)
SECRET = c.new_secret()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_valid_basic_credentials_parse() -> None:
    """A well-formed Basic header yields the token, secret and type."""
    creds = parse_authorization("Basic " + b64(f"{TOKEN}:{SECRET}".encode()))
    assert creds == BasicCredentials(TOKEN, SECRET, TokenType.WORKSPACE)


def test_scheme_is_case_insensitive() -> None:
    """The auth scheme name is case-insensitive (RFC 9110)."""
    assert isinstance(parse_authorization("bAsIc " + b64(f"{TOKEN}:{SECRET}".encode())),
                      BasicCredentials)


def test_bearer_token_parses() -> None:
    """A well-formed bearer token is accepted for the trusted-auth resolver."""
    bearer = c.new_bearer_token()
    assert parse_authorization("Bearer " + bearer) == BearerCredentials(bearer)


def test_secret_never_in_repr() -> None:
    """The secret does not appear in the repr (so it cannot leak into logs)."""
    creds = parse_authorization("Basic " + b64(f"{TOKEN}:{SECRET}".encode()))
    assert SECRET not in repr(creds)


HOSTILE = {
    "missing": None,
    "empty": "",
    "not base64": "Basic !!!notbase64!!!",
    "no colon": "Basic " + b64(f"{TOKEN}{SECRET}".encode()),
    "empty token": "Basic " + b64(f":{SECRET}".encode()),
    "empty secret": "Basic " + b64(f"{TOKEN}:".encode()),
    "non-utf8": "Basic " + b64(b"\xff\xfe:\xff"),
    "16 KB": "Basic " + "A" * 16384,
    "wrong checksum": "Basic " + b64(f"{TOKEN}:{SECRET[:-1]}{'A' if SECRET[-1] != 'A' else 'B'}".encode()),
    "wrong scheme": "Digest " + b64(f"{TOKEN}:{SECRET}".encode()),
    "scheme only": "Basic",
    "bad bearer": "Bearer tgb_nope",
    "secret as token": "Basic " + b64(f"{SECRET}:{SECRET}".encode()),
    "bad token checksum": "Basic " + b64(f"{TOKEN[:-1]}{'A' if TOKEN[-1] != 'A' else 'B'}:{SECRET}".encode()),
}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_values_are_401_with_a_generic_detail(value: str | None) -> None:
    """Each malformed header is refused as 401 with reason malformed and no hint."""
    with pytest.raises(Unauthenticated) as info:
        parse_authorization(value)
    assert info.value.status == 401
    assert info.value.reason == "malformed"
    assert info.value.headers["WWW-Authenticate"] == 'Basic realm="tokengate"'
    assert TOKEN not in info.value.detail
