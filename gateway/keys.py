"""The master key and the subkeys derived from it with HKDF.

One secret (``TOKENGATE_MASTER_KEY``, 32 random bytes in base64) is all an
operator keeps. Separate subkeys per purpose mean a flaw in one use (say, a
signing oracle) never exposes the key of another (credential hashing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_ENV = "TOKENGATE_MASTER_KEY"
MASTER_KEY_BYTES = 32
KEY_CHECK_LABEL = b"tokengate master key check v1"
HOW_TO_MAKE = "run `tokengate keygen` and export the result as TOKENGATE_MASTER_KEY"


class MasterKeyError(Exception):
    """The master key is missing or malformed; the message says how to fix it."""


def generate_master_key() -> str:
    """A new master key: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()


def parse_master_key(value: str) -> bytes:
    """Decode a base64 master key and check its length."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{MASTER_KEY_ENV} is not valid base64; {HOW_TO_MAKE}") from None
    if len(raw) != MASTER_KEY_BYTES:
        raise MasterKeyError(
            f"{MASTER_KEY_ENV} must decode to {MASTER_KEY_BYTES} bytes, got {len(raw)}; {HOW_TO_MAKE}"
        )
    return raw


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"tokengate/v1", info=purpose
    ).derive(master)


@dataclass(frozen=True, slots=True)
class Keys:
    """Subkeys for hashing credentials, encrypting stored secrets and signing."""

    hashing: bytes = field(repr=False)
    encryption: bytes = field(repr=False)
    signing: bytes = field(repr=False)
    check: bytes = field(repr=False)

    @classmethod
    def from_master(cls, master: bytes) -> Keys:
        """Derive every subkey from the master key."""
        return cls(
            hashing=_derive(master, b"credential-hash"),
            encryption=_derive(master, b"secret-encryption"),
            signing=_derive(master, b"signing"),
            check=_derive(master, b"key-check"),
        )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Keys:
        """Load the master key from the environment (or a file named there)."""
        env = os.environ if environ is None else environ
        value = env.get(MASTER_KEY_ENV)
        path = env.get(MASTER_KEY_ENV + "_FILE")
        if not value and path:
            try:
                with open(path, encoding="utf-8") as fh:
                    value = fh.read()
            except OSError as exc:
                raise MasterKeyError(f"{MASTER_KEY_ENV}_FILE: cannot read {path}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise MasterKeyError(f"{MASTER_KEY_ENV}_FILE: {path} is not base64 text; "
                                     f"{HOW_TO_MAKE}") from None
        if not value:
            raise MasterKeyError(f"{MASTER_KEY_ENV} is not set; {HOW_TO_MAKE}")
        return cls.from_master(parse_master_key(value))

    def check_value(self) -> str:
        """The key check value: an HMAC of a fixed label under a subkey of its own.

        Recorded in the store on first use, so a process holding a different
        master key is refused at start. It reveals nothing about the master key
        or the other subkeys (HKDF separates them; HMAC is one-way).
        """
        return hmac.new(self.check, KEY_CHECK_LABEL, hashlib.sha256).hexdigest()

    def hash_secret(self, secret: str) -> str:
        """The keyed hash (HMAC-SHA256) stored in place of a secret."""
        return hmac.new(self.hashing, secret.encode(), hashlib.sha256).hexdigest()

    def verify_secret(self, secret: str, stored_hash: str) -> bool:
        """Compare a presented secret with a stored hash in constant time."""
        return hmac.compare_digest(self.hash_secret(secret), stored_hash)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """AES-GCM encrypt a stored secret; ``context`` binds it to where it is stored."""
        nonce = secrets.token_bytes(12)
        ct = AESGCM(self.encryption).encrypt(nonce, plaintext.encode(), context.encode())
        return base64.b64encode(nonce + ct).decode()

    def decrypt(self, blob: str, *, context: str) -> str:
        """Decrypt what :meth:`encrypt` produced (raises on tampering or a wrong key)."""
        raw = base64.b64decode(blob)
        return AESGCM(self.encryption).decrypt(raw[:12], raw[12:], context.encode()).decode()
