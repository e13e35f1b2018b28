"""``X-Tokengate-Assertion``: the identity headers as a signed JWT.

An upstream that cannot trust the network between it and the gateway checks
this instead of the plain headers: an EdDSA (Ed25519) JWT whose key is
derived from the master key and published at ``/.well-known/jwks.json`` on
the admin listener.

Every request gets its own assertion: a random ``jti`` and the request id
(``rid``) bind it to that one request, and ``aud`` names the upstream it is
for, so an assertion captured from one request (or one upstream) proves
nothing anywhere else. Signing per request costs about 50 µs of CPU; a
shared cached assertion would let anyone who saw it replay it for its
whole lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.policy.model import Identity

ISSUER = "tokengate"


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

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set upstreams verify assertions with."""
        return {"keys": [self.jwk]}

    def assertion(self, identity: Identity, now: float, *, request_id: str,
                  audience: str) -> str:
        """A compact JWT of the identity for one request, valid for ``ttl`` seconds."""
        iat = int(now)
        claims = {
            "iss": ISSUER, "aud": audience, "sub": identity.user, "role": identity.role.value,
            "token_type": identity.token_type.value, "token": identity.token,
            "workspace": identity.workspace, "iat": iat, "exp": iat + self.ttl,
            "jti": b64url(secrets.token_bytes(16)), "rid": request_id,
        }
        signing_input = self._header + "." + b64url(orjson.dumps(claims))
        return signing_input + "." + b64url(self._key.sign(signing_input.encode()))
