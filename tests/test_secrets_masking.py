"""Secrets never reach output: config errors, `config check`, the start-up log; weak admin keys refused."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import ConfigError, load_settings, redacted_url
from gateway.logs import mask_text
from gateway.policy.keystrength import MIN_BITS, estimated_bits, key_weakness
from tests.admin.support import cli_env
from tests.conftest import RecordingUpstream

STORE_PW = "st0re-Pa55-Qx7"
UPSTREAM_PW = "upstr3am-Pa55-Zk9"


@pytest.mark.parametrize(("text", "masked"), [
    ("redis://:hunter2@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://default:hunter2@h/0", "redis://default:***@h/0"),
    ("rediss://u:p@ss:w0rd@h:6380", "rediss://u:***@h:6380"),  # an unencoded "@" in it
    ("redis+sentinel://:pw@s1:26379,s2:26379/mymaster", "redis+sentinel://:***@s1:26379,s2:26379/mymaster"),
    ("http://bob:pw@api.internal:3000/x", "http://bob:***@api.internal:3000/x"),
    ("got 'ftp://bob:pw@x/'", "got 'ftp://bob:***@x/'"),
    ("redis://h/0?password=pw&db=1", "redis://h/0?password=***&db=1"),
    ("redis://user@h/0", "redis://user@h/0"),  # a user name alone is not a secret
    ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
    ("listen on 0.0.0.0:8080", "listen on 0.0.0.0:8080"),
])
def test_redacted_url_masks_url_passwords_only(text: str, masked: str) -> None:
    """redacted_url masks the password of any URL in a text (``user:***@``) and nothing else."""
    assert redacted_url(text) == masked
    assert mask_text(text).replace("[REDACTED]", "***") == masked  # the log filter does it too


def _error(env: dict[str, str] | None = None, text: str | None = None, tmp: Path | None = None) -> str:
    path = None
    if text is not None:
        assert tmp is not None
        path = tmp / "c.toml"
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=env or {})
    return str(info.value)


@pytest.mark.parametrize(("env", "text", "key", "secret"), [
    ({"TOKENGATE_STORE_URL": f"mysql://u:{STORE_PW}@db/0"}, None, "store.url", STORE_PW),
    ({"TOKENGATE_STORE_URL": f"redis+sentinel://:{STORE_PW}@s1:26379"}, None, "store.url", STORE_PW),
    ({"TOKENGATE_UPSTREAM_URL": f"ftp://bob:{UPSTREAM_PW}@x"}, None, "upstream.url", UPSTREAM_PW),
    ({"TOKENGATE_UPSTREAM_URL": f"http://bob:{UPSTREAM_PW}@x/?q=1"}, None, "upstream.url", UPSTREAM_PW),
    ({"TOKENGATE_ADMIN_KEY": "my-Short-Adm1n-key"}, None, "admin.key", "my-Short-Adm1n-key"),
    ({"TOKENGATE_ADMIN_KEY": "Adm1nKey" * 5}, None, "admin.key", "Adm1nKey"),
    ({}, "[admin]\nkey = 918273645091827364509182736450918273645\n", "admin.key", "9182736450"),
    ({}, "[admin]\nkey = ['s3cret-Adm1n-value-in-a-list-xxxxxxxxx']\n", "admin.key", "s3cret-Adm1n"),
])
def test_config_errors_name_the_key_but_never_echo_a_secret(
    tmp_path: Path, env: dict[str, str], text: str | None, key: str, secret: str
) -> None:
    """A bad store/upstream URL, or a bad-typed or weak admin key, is named without its secret."""
    message = _error(env, text, tmp_path)
    assert key in message and "\n" not in message
    assert secret not in message


KEYS_THAT_FAIL = [
    "a" * 40,
    "0123456789abcdef0123456789abcdef",
    "passwordpasswordpasswordpassword",
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
    "Tr0ub4dor&3Tr0ub4dor&3Tr0ub4dor&3",
    "0123456789abcdef" * 4,
    "test-admin-key-0123456789abcdef",  # the old test key: 31 characters
    secrets.token_hex(16)[:31],
    " " + secrets.token_hex(24),
]
KEYS_THAT_PASS = [
    "7a76502e9632acf9fa0c054284058f229eac8602a053d840",  # openssl rand -hex 24
    "3F9C0D7B5A1E4C2B8D6F0A9E7C5B3D1F2E4A6C8B0D9F7E5A",  # the same, upper case
    "q1lW0Mr7cY8b3Jd2PzXk+u9N/e5TtGvHR4aS6oLfIwE=",     # openssl rand -base64 32
    "Xk2lq9Tz_4mB7cW-0vNa8rYd3Hs6pEfJ",                 # 24 random bytes, base64url
]


@pytest.mark.parametrize("key", KEYS_THAT_FAIL)
def test_weak_admin_keys_are_refused(key: str) -> None:
    """Short keys, repeats, runs and words are refused with a hint how to make a good one."""
    weakness = key_weakness(key)
    assert weakness is not None and "openssl rand" in weakness


@pytest.mark.parametrize("key", KEYS_THAT_PASS)
def test_random_admin_keys_pass(key: str) -> None:
    """Keys from openssl rand -hex 24 / -base64 (24+ bytes) pass."""
    assert key_weakness(key) is None


def test_generated_keys_pass_with_a_wide_margin() -> None:
    """500 fresh hex-24 and base64-24 keys each estimate well above the 128-bit bar."""
    for _ in range(500):
        for key in (secrets.token_hex(24), base64.b64encode(secrets.token_bytes(24)).decode(),
                    secrets.token_urlsafe(24)):
            # The worst seen in 100,000 of each is about 160 bits.
            assert estimated_bits(key) >= MIN_BITS + 16, key


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env,
                          capture_output=True, text=True, timeout=30, check=False)


def test_config_check_prints_urls_without_their_passwords(redis_url: str) -> None:
    """`tokengate config check` shows store and upstream URLs with ``user:***@``."""
    store = redis_url.replace("redis://", f"redis://default:{STORE_PW}@")
    res = _cli("config", "check", env=cli_env(None, TOKENGATE_STORE_URL=store,
                                             TOKENGATE_UPSTREAM_URL=f"http://bob:{UPSTREAM_PW}@127.0.0.1:3000"))
    assert res.returncode == 0, res.stderr
    assert "config ok" in res.stdout and "default:***@" in res.stdout and "bob:***@" in res.stdout
    assert STORE_PW not in res.stdout + res.stderr and UPSTREAM_PW not in res.stdout + res.stderr


@pytest.mark.parametrize(("env", "text", "secret"), [
    ({"TOKENGATE_ADMIN_KEY": "passwordpasswordpasswordpassword"}, None, "passwordpassword"),
    ({}, "[admin]\nkey = 918273645091827364509182736450918273645\n", "9182736450"),
    ({"TOKENGATE_STORE_URL": f"mysql://u:{STORE_PW}@db/0"}, None, STORE_PW),
])
def test_config_check_and_serve_refuse_bad_secrets_without_printing_them(
    tmp_path: Path, env: dict[str, str], text: str | None, secret: str
) -> None:
    """`config check` and `serve` exit 2 with one line that names the key and not the secret."""
    extra = []
    if text is not None:
        (tmp_path / "c.toml").write_text(text)
        extra = ["--config", str(tmp_path / "c.toml")]
    for command in (["config", "check"], ["serve"]):
        res = _cli(*command, *extra, env=cli_env(None, TOKENGATE_MASTER_KEY=base64.b64encode(
            secrets.token_bytes(32)).decode(), **env))
        assert res.returncode == 2, (command, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
        assert secret not in res.stdout + res.stderr


async def test_serve_logs_no_store_or_upstream_password(
    gateway_factory: Any, redis_url: str, upstream: RecordingUpstream,
) -> None:
    """A running gateway whose store and upstream URLs hold passwords never logs them."""
    store = redis_url.replace("redis://", f"redis://default:{STORE_PW}@")
    target = upstream.url.replace("http://", f"http://bob:{UPSTREAM_PW}@")
    gp = gateway_factory(store_url=store, upstream=target)
    async with aiohttp.ClientSession() as s, s.get(gp.admin + "/readyz") as r:
        assert r.status == 200  # the password-bearing store URL works
    logs = gp.logs()
    assert "tokengate listening" in logs
    assert STORE_PW not in logs and UPSTREAM_PW not in logs
    assert "bob:***@" in logs
