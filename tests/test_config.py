"""Settings: the example file, env overrides, and one-line errors that name the key."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "tokengate.example.toml"


def test_example_file_loads_and_equals_the_defaults() -> None:
    """The shipped example is valid and documents the defaults exactly."""
    loaded = load_settings(EXAMPLE, environ={})
    defaults = load_settings(environ={})
    assert loaded.model_dump(exclude={"deny"}) == defaults.model_dump(exclude={"deny"})


def _keys(model: type[Settings] | object, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    out = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _keys(ann, prefix + name + ".")
        else:
            out.add(prefix + name)
    return out


def test_example_file_documents_every_key() -> None:
    """Every setting appears in the example file (commented keys count)."""
    text = EXAMPLE.read_text()
    flat = text.replace("# ", "")
    data = tomllib.loads(text)
    missing = []
    for key in _keys(Settings):
        *sections, leaf = key.split(".")
        node = data
        for s in sections:
            node = node.get(s, {})
        if leaf not in node and f"{leaf} =" not in flat and f"[[{key}]]" not in flat:
            missing.append(key)
    assert missing == []


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    """TOKENGATE_<SECTION>_<KEY> beats the file; command-line overrides beat both."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[rate_limit]\nlimit = 5\n[store]\nurl = "memory://"\n')
    s = load_settings(cfg, environ={"TOKENGATE_RATE_LIMIT_LIMIT": "7"})
    assert s.rate_limit.limit == 7 and s.store.url == "memory://"
    s = load_settings(cfg, environ={"TOKENGATE_RATE_LIMIT_LIMIT": "7"},
                      overrides={"rate_limit": {"limit": 9}})
    assert s.rate_limit.limit == 9


@pytest.mark.parametrize(("name", "value", "read"), [
    ("TOKENGATE_RATE_LIMIT_AUTH_FAILURES_LIMIT", "7", lambda s: s.rate_limit.auth_failures.limit),
    ("TOKENGATE_RATE_LIMIT_AUTH_FAILURES_WINDOW_SECONDS", "5",
     lambda s: s.rate_limit.auth_failures.window_seconds),
    ("TOKENGATE_TRUSTED_AUTH_KEY_FAILURES_LIMIT", "3", lambda s: s.trusted_auth.key_failures.limit),
    ("TOKENGATE_TRUSTED_AUTH_DEFAULT_VALIDITY_SECONDS", "60",
     lambda s: s.trusted_auth.default_validity_seconds),
])
def test_env_reaches_blocks_nested_in_a_section(name: str, value: str, read: Any) -> None:
    """A block inside a section (rate_limit.auth_failures) is settable like any other key."""
    assert read(load_settings(environ={name: value})) == float(value)


BAD = [
    ({"TOKENGATE_PROXY_LISTEN": "localhost"}, "proxy.listen"),
    ({"TOKENGATE_PROXY_LISTEN": "1.2.3.4:99999"}, "proxy.listen"),
    ({"TOKENGATE_ADMIN_LISTEN": "bad host:80"}, "admin.listen"),
    ({"TOKENGATE_UPSTREAM_URL": "ftp://x"}, "upstream.url"),
    ({"TOKENGATE_UPSTREAM_URL": "http://"}, "upstream.url"),
    ({"TOKENGATE_STORE_URL": "mysql://x"}, "store.url"),
    ({"TOKENGATE_RATE_LIMIT_LIMIT": "lots"}, "rate_limit.limit"),
    ({"TOKENGATE_RATE_LIMIT_LIMIT": "0"}, "rate_limit.limit"),
    ({"TOKENGATE_RATE_LIMIT_KEY": "ip"}, "rate_limit.key"),
    ({"TOKENGATE_NO_SUCH": "1"}, "TOKENGATE_NO_SUCH"),
    ({"TOKENGATE_STORE_NOPE": "1"}, "TOKENGATE_STORE_NOPE"),
    ({"TOKENGATE_RATE_LIMIT_AUTH_FAILURES": "1"}, "rate_limit.auth_failures"),
    ({"TOKENGATE_RATE_LIMIT_AUTH_FAILURES_NOPE": "1"}, "rate_limit.auth_failures.nope"),
    ({"TOKENGATE_RATE_LIMIT_AUTH_FAILURES_LIMIT": "0"}, "rate_limit.auth_failures.limit"),
    ({"TOKENGATE_LOG_FORMAT": "xml"}, "log.format"),
    ({"TOKENGATE_PERSONAL_TOKENS_CUTOFF": "someday"}, "personal_tokens.cutoff"),
    ({"TOKENGATE_ADMIN_KEY": "too-short-for-a-bearer-key"}, "admin.key"),
    ({"TOKENGATE_ADMIN_ALLOWED_HOSTS": "ok.example,not a host"}, "admin.allowed_hosts"),
    ({"TOKENGATE_ADMIN_ALLOWED_HOSTS": "admin.example:9090"}, "admin.allowed_hosts"),
    ({"TOKENGATE_PROXY_ASSERTION_AUDIENCE": ""}, "proxy.assertion_audience"),
]


@pytest.mark.parametrize(("env", "key"), BAD, ids=[b[1] + "=" + next(iter(b[0].values())) for b in BAD])
def test_bad_settings_raise_one_line_naming_the_key(env: dict[str, str], key: str) -> None:
    """A wrong value is a ConfigError whose single line names the key."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    message = str(info.value)
    assert key in message and "\n" not in message


@pytest.mark.parametrize(("text", "key"), [
    ("[proxy]\nlisten = 8080\n", "proxy.listen"),
    ("[proxy]\nlistn = '0.0.0.0:1'\n", "proxy.listn"),
    ("bogus = 1\n", "bogus"),
    ("[tokens]\ndefault_expiry_days = 400\nmax_expiry_days = 100\n", "default_expiry_days"),
    ("[[deny]]\nname='x'\npath='/a'\ntoken_types=['robot']\n", "deny rule 'x'"),
    ("[[deny]]\nname='x'\npath='nope'\n", "deny rule 'x'"),
    ("[[deny]]\nname='x'\npath='/a'\n[[deny]]\nname='x'\npath='/b'\n", "duplicate"),
    ("not toml [", "not valid TOML"),
])
def test_bad_files_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    """Type errors, unknown keys, bad rules and broken TOML name what is wrong."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        load_settings(cfg, environ={})
    assert key in str(info.value)


def test_config_check_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    """`tokengate config check` prints one line naming the key and exits 2."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[upstream]\nurl = 'nope'\n")
    res = subprocess.run([sys.executable, "-m", "gateway", "config", "check", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 2
    assert "upstream.url" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_serve_without_master_key_exits_2_saying_how_to_make_one() -> None:
    """`tokengate serve` refuses to start without TOKENGATE_MASTER_KEY and says what to do."""
    env = {"PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "gateway", "serve", "--store", "memory://"],
                         capture_output=True, text=True, timeout=30, env=env, check=False)
    assert res.returncode == 2
    assert "tokengate keygen" in res.stderr and "Traceback" not in res.stderr
