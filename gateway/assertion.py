"""``X-Tokengate-Assertion``: the identity headers as a signed JWT.

An upstream that cannot trust the network between it and the gateway checks
this instead of the plain headers: an EdDSA (Ed25519) JWT whose key is
derived from the master key and published at ``/.well-known/jwks.json`` on
the admin listener. Signing costs tens of microseconds, so an assertion is
reused for the same identity until half its lifetime has passed.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.policy.model import Identity

ISSUER = "tokengate"
CACHE_MAX = 10_000


def b64url(raw: bytes) -> str:
    """Base64url without padding (RFC 7515)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class AssertionSigner:
    """Signs identity assertions with an Ed25519 key derived from the signing subkey."""

    def __init__(self, signing_key: bytes, *, ttl_seconds: int = 60) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(b"tokengate assertion key\0" + signing_key).digest()
        )
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.kid = hashlib.sha256(public).hexdigest()[:16]
        self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(public), "kid": self.kid,
                    "alg": "EdDSA", "use": "sig"}
        self.ttl = ttl_seconds
        self._header = b64url(orjson.dumps({"alg": "EdDSA", "typ": "JWT", "kid": self.kid}))
        self._cache: dict[Identity, tuple[float, str]] = {}

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set upstreams verify assertions with."""
        return {"keys": [self.jwk]}

    def assertion(self, identity: Identity, now: float) -> str:
        """A compact JWT of the identity, valid for ``ttl`` seconds from when it was signed."""
        cached = self._cache.get(identity)
        if cached is not None and now < cached[0]:
            return cached[1]
        iat = int(now)
        claims = {
            "iss": ISSUER, "sub": identity.user, "role": identity.role.value,
            "token_type": identity.token_type.value, "token": identity.token,
            "workspace": identity.workspace, "iat": iat, "exp": iat + self.ttl,
        }
        signing_input = self._header + "." + b64url(orjson.dumps(claims))
        jwt = signing_input + "." + b64url(self._key.sign(signing_input.encode()))
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[identity] = (iat + self.ttl / 2, jwt)
        return jwt
