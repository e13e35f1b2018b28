"""X-Tokengate-Assertion: a signed JWT of the identity, verifiable with the JWKS."""

from __future__ import annotations

import base64
import json

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.assertion import AssertionSigner
from gateway.policy.model import Identity, Role, TokenType
from tests.conftest import InProcess, RecordingUpstream, basic


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify(jwt: str, jwks: dict) -> dict:  # type: ignore[type-arg]
    """Check a compact EdDSA JWT against a JWKS; return its claims."""
    header_b64, claims_b64, sig_b64 = jwt.split(".")
    header = json.loads(_unb64(header_b64))
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert header["alg"] == "EdDSA" and key["crv"] == "Ed25519"
    public = Ed25519PublicKey.from_public_bytes(_unb64(key["x"]))
    public.verify(_unb64(sig_b64), f"{header_b64}.{claims_b64}".encode())
    return json.loads(_unb64(claims_b64))  # type: ignore[no-any-return]


async def test_upstream_receives_a_verifiable_assertion(
    make_gateway, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """With assertions on, the upstream gets a JWT of the identity that the JWKS verifies."""
    g: InProcess = await make_gateway({"proxy": {"assertion": True}})
    async with aiohttp.ClientSession() as s:
        async with s.get(g.admin + "/.well-known/jwks.json") as r:
            jwks = await r.json()
        async with s.get(g.proxy + "/x", headers={"Authorization": basic(g.token, g.secret),
                                                  "X-Tokengate-Assertion": "forged"}) as r:
            assert r.status == 200
    values = [v for k, v in upstream.seen[-1].headers if k.lower() == "x-tokengate-assertion"]
    assert len(values) == 1 and values[0] != "forged"
    claims = verify(values[0], jwks)
    assert claims["sub"] == "workspace:default" and claims["token"] == g.token
    assert claims["role"] == "admin" and claims["token_type"] == "workspace"
    assert claims["exp"] - claims["iat"] == 60 and claims["iss"] == "tokengate"


async def test_no_assertion_unless_enabled(make_gateway, upstream: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """By default no assertion header is added (and a client's copy is stripped)."""
    g: InProcess = await make_gateway()
    async with aiohttp.ClientSession() as s:
        async with s.get(g.proxy + "/x", headers={"Authorization": basic(g.token, g.secret),
                                                  "X-Tokengate-Assertion": "forged"}) as r:
            assert r.status == 200
    assert not [k for k, _ in upstream.seen[-1].headers if k.lower() == "x-tokengate-assertion"]


def test_assertions_are_reused_then_renewed_and_keys_differ_per_master() -> None:
    """An identity's assertion is reused for half its lifetime; other master keys sign differently."""
    ident = Identity("ada", Role.MEMBER, TokenType.MEMBER, "tgm_x", "acme")
    signer = AssertionSigner(b"a" * 32, ttl_seconds=60)
    first = signer.assertion(ident, 1000.0)
    assert signer.assertion(ident, 1029.0) == first
    renewed = signer.assertion(ident, 1031.0)
    assert renewed != first and verify(renewed, signer.jwks())["iat"] == 1031
    other = AssertionSigner(b"b" * 32)
    assert other.kid != signer.kid
