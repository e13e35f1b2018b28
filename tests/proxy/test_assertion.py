"""X-Tokengate-Assertion: a signed JWT of the identity, verifiable with the JWKS."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.assertion import AssertionSigner
from gateway.config import load_settings
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


def assertion_seen(upstream: RecordingUpstream, index: int = -1) -> tuple[str, str]:
    """The assertion and the X-Request-Id of one request the upstream received."""
    headers = [(k.lower(), v) for k, v in upstream.seen[index].headers]
    (jwt,) = [v for k, v in headers if k == "x-tokengate-assertion"]
    (rid,) = [v for k, v in headers if k == "x-request-id"]
    return jwt, rid


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
    # Unset, the audience is the upstream URL's origin.
    assert claims["aud"] == upstream.url


async def test_no_assertion_unless_enabled(make_gateway, upstream: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """By default no assertion header is added (and a client's copy is stripped)."""
    g: InProcess = await make_gateway()
    headers = {"Authorization": basic(g.token, g.secret), "X-Tokengate-Assertion": "forged"}
    async with aiohttp.ClientSession() as s, s.get(g.proxy + "/x", headers=headers) as r:
        assert r.status == 200
    assert not [k for k, _ in upstream.seen[-1].headers if k.lower() == "x-tokengate-assertion"]


async def test_each_request_gets_its_own_assertion_bound_to_it(
    gateway_factory, redis_url: str, upstream: RecordingUpstream  # type: ignore[no-untyped-def]
) -> None:
    """A real gateway signs a fresh assertion per request: own jti, rid = that request's id, aud set.

    The replay this stops: an assertion captured from one request (a log, a
    proxy in between) was accepted for any other request of the same
    identity for half its lifetime, and by any upstream.
    """
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, extra_env={
        "TOKENGATE_PROXY_ASSERTION": "true",
        "TOKENGATE_PROXY_ASSERTION_AUDIENCE": "https://reports.internal"})
    status, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "ci"})
    assert status == 201
    auth = basic(tok["token"], tok["secret"])
    async with aiohttp.ClientSession() as s:
        async with s.get(gp.admin + "/.well-known/jwks.json") as r:
            jwks = await r.json()
        for request_id in ("req-one", "req-one", None):  # a client may repeat its own id
            headers = {"Authorization": auth, **({"X-Request-Id": request_id} if request_id else {})}
            async with s.get(gp.proxy + "/api/default/x", headers=headers) as r:
                assert r.status == 200
    seen = [assertion_seen(upstream, i) for i in range(-3, 0)]
    claims = [verify(jwt, jwks) for jwt, _ in seen]
    assert len({jwt for jwt, _ in seen}) == 3
    assert len({c["jti"] for c in claims}) == 3
    assert all(len(c["jti"]) >= 22 for c in claims)  # 128 random bits, base64url
    assert [c["rid"] for c in claims] == [rid for _, rid in seen]
    assert claims[0]["rid"] == "req-one"
    assert {c["aud"] for c in claims} == {"https://reports.internal"}


def test_assertions_are_never_reused_and_keys_differ_per_master() -> None:
    """Two assertions for one identity at the same instant differ (jti, rid); other masters sign differently."""
    ident = Identity("ada", Role.MEMBER, TokenType.MEMBER, "tgm_x", "acme")
    signer = AssertionSigner(b"a" * 32, ttl_seconds=60)
    first = signer.assertion(ident, 1000.0, request_id="r1", audience="https://up")
    again = signer.assertion(ident, 1000.0, request_id="r1", audience="https://up")
    other_request = signer.assertion(ident, 1000.0, request_id="r2", audience="https://up")
    a, b, c = (verify(j, signer.jwks()) for j in (first, again, other_request))
    assert first != again and a["jti"] != b["jti"]
    assert (a["rid"], c["rid"]) == ("r1", "r2") and a["aud"] == "https://up"
    assert a["iat"] == 1000 and a["exp"] == 1060
    other = AssertionSigner(b"b" * 32)
    assert other.kid != signer.kid


@pytest.mark.parametrize(("upstream_url", "audience", "expected"), [
    ("http://127.0.0.1:3000", None, "http://127.0.0.1:3000"),
    ("https://api.example.com/base/path", None, "https://api.example.com"),
    ("http://user:pw@[::1]:8443/x", None, "http://[::1]:8443"),
    ("http://127.0.0.1:3000", "reports-api", "reports-api"),
])
def test_the_audience_is_configured_or_the_upstream_origin(
    upstream_url: str, audience: str | None, expected: str
) -> None:
    """``aud`` is proxy.assertion_audience, else the upstream URL's origin (never its userinfo or path)."""
    proxy = {"assertion_audience": audience} if audience else {}
    settings = load_settings(environ={}, overrides={"upstream": {"url": upstream_url},
                                                    "proxy": proxy})
    assert settings.assertion_audience == expected
