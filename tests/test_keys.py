"""The master key and its HKDF subkeys."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from gateway.keys import Keys, MasterKeyError, generate_master_key, parse_master_key


def test_keygen_makes_32_random_bytes() -> None:
    """keygen output decodes to 32 bytes and differs each time."""
    a, b = generate_master_key(), generate_master_key()
    assert len(base64.b64decode(a)) == 32 and a != b


@pytest.mark.parametrize("value", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_bad_master_keys_say_how_to_make_one(value: str) -> None:
    """A malformed master key is refused with a message pointing at keygen."""
    with pytest.raises(MasterKeyError, match="tokengate keygen"):
        Keys.from_env({"TOKENGATE_MASTER_KEY": value})


def test_subkeys_are_distinct_and_deterministic() -> None:
    """Each purpose gets its own key, the same for the same master key."""
    master = parse_master_key(generate_master_key())
    k1, k2 = Keys.from_master(master), Keys.from_master(master)
    assert k1 == k2
    assert len({k1.hashing, k1.encryption, k1.signing, master}) == 4


def test_secret_hash_is_keyed_and_verified_in_constant_time() -> None:
    """The stored hash depends on the master key; verify accepts only the right secret."""
    k1 = Keys.from_master(b"\x01" * 32)
    k2 = Keys.from_master(b"\x02" * 32)
    h = k1.hash_secret("tgs_secret")
    assert h != k2.hash_secret("tgs_secret") and "tgs_secret" not in h
    assert k1.verify_secret("tgs_secret", h)
    assert not k1.verify_secret("tgs_secreT", h)


def test_encryption_round_trips_and_binds_context() -> None:
    """Encrypted values decrypt only with the same key and context."""
    k = Keys.from_master(b"\x03" * 32)
    blob = k.encrypt("hello", context="ws:acme")
    assert "hello" not in blob and k.decrypt(blob, context="ws:acme") == "hello"
    with pytest.raises(InvalidTag):
        k.decrypt(blob, context="ws:other")
    with pytest.raises(InvalidTag):
        Keys.from_master(b"\x04" * 32).decrypt(blob, context="ws:acme")


def test_keys_file_env(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """TOKENGATE_MASTER_KEY_FILE names a file holding the key."""
    key = generate_master_key()
    path = tmp_path / "mk"
    path.write_text(key + "\n")
    assert Keys.from_env({"TOKENGATE_MASTER_KEY_FILE": str(path)}) == Keys.from_master(
        base64.b64decode(key))


def test_key_check_value_tells_keys_apart_and_reveals_no_subkey() -> None:
    """The check value is stable for one master key, differs for another, and is
    neither the master key nor any subkey (nor a hash made with one)."""
    master = b"\x05" * 32
    k = Keys.from_master(master)
    value = k.check_value()
    assert value == Keys.from_master(master).check_value()
    assert value != Keys.from_master(b"\x06" * 32).check_value()
    assert len(value) == 64 and int(value, 16) >= 0
    secrets = [master, k.hashing, k.encryption, k.signing, k.check]
    assert all(s.hex() not in value and base64.b64encode(s).decode() not in value
               for s in secrets)
    assert k.check not in (k.hashing, k.encryption, k.signing)
    assert value != k.hash_secret("tokengate master key check v1")


def test_a_master_key_file_that_is_not_text_is_one_clear_error(tmp_path: Path) -> None:
    """TOKENGATE_MASTER_KEY_FILE naming a binary file is a MasterKeyError, not a
    UnicodeDecodeError, and the message does not echo the file's bytes."""
    path = tmp_path / "mk"
    path.write_bytes(b"\xff\xfe\x00secret")
    with pytest.raises(MasterKeyError) as info:
        Keys.from_env({"TOKENGATE_MASTER_KEY_FILE": str(path)})
    assert "not base64 text" in str(info.value) and "secret" not in str(info.value)
