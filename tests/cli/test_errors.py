"""Start-up errors: bad configuration and a missing master key exit 2 with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.admin.support import cli_env, run_cli


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("text, name", [
    ('[proxy]\nlisen = "127.0.0.1:8080"\n', "proxy.lisen"),
    ('colour = "blue"\n', "colour"),
    ('[tokens]\ndefault_expiry_days = "ninety"\n', "tokens.default_expiry_days"),
    ('[rate_limit]\nkey = "ip"\n', "rate_limit.key"),
])
def test_config_check_names_a_bad_key_and_exits_2(tmp_path: Path, text: str, name: str) -> None:
    """`config check` on a file with a bad key exits 2 with one line naming the key."""
    cfg = tmp_path / "tokengate.toml"
    cfg.write_text(text)
    out = run_cli("config", "check", "--config", str(cfg), env=cli_env(None))
    assert out.returncode == 2
    line = _one_line(out.stderr)
    assert line.startswith("tokengate: ") and name in line
    assert out.stdout == ""


def test_config_check_names_a_bad_environment_variable(tmp_path: Path) -> None:
    """A misspelt TOKENGATE_* variable is reported by name, exit 2."""
    out = run_cli("config", "check", env=cli_env(None, TOKENGATE_PROXY_LISTN="x"))
    assert out.returncode == 2
    assert "TOKENGATE_PROXY_LISTN" in _one_line(out.stderr)


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    """A valid file passes `config check` with exit 0 and a summary."""
    cfg = tmp_path / "tokengate.toml"
    cfg.write_text('[proxy]\nlisten = "127.0.0.1:8081"\n[tokens]\ndefault_expiry_days = 30\n')
    out = run_cli("config", "check", "--config", str(cfg), env=cli_env(None))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("config ok") and "127.0.0.1:8081" in out.stdout


def test_config_check_reports_a_missing_file(tmp_path: Path) -> None:
    """A config file that does not exist is one line naming it, exit 2."""
    out = run_cli("config", "check", "--config", str(tmp_path / "nope.toml"), env=cli_env(None))
    assert out.returncode == 2
    assert "nope.toml" in _one_line(out.stderr)


def test_serve_without_a_master_key_says_how_to_make_one(redis_url: str) -> None:
    """`serve` without TOKENGATE_MASTER_KEY exits 2 with one line saying how to make one."""
    out = run_cli("serve", "--store", redis_url, "--listen", "127.0.0.1:0",
                  "--admin-listen", "127.0.0.1:0", env=cli_env(None), timeout=20)
    assert out.returncode == 2
    line = _one_line(out.stderr)
    assert "TOKENGATE_MASTER_KEY" in line and "tokengate keygen" in line


def test_serve_with_a_malformed_master_key_says_how_to_make_one(redis_url: str) -> None:
    """A master key that is not 32 bytes of base64 is refused the same way."""
    out = run_cli("serve", "--store", redis_url, env=cli_env("too-short"), timeout=20)
    assert out.returncode == 2
    assert "tokengate keygen" in _one_line(out.stderr)


def test_keygen_prints_a_valid_master_key() -> None:
    """`tokengate keygen` prints a master key: 32 random bytes in base64."""
    from gateway.keys import parse_master_key

    out = run_cli("keygen", env=cli_env(None))
    assert out.returncode == 0
    assert len(parse_master_key(out.stdout.strip())) == 32


def test_store_commands_without_a_master_key_exit_2(redis_url: str) -> None:
    """A store command that needs the master key exits 2 saying how to make one."""
    out = run_cli("token", "list", "--store", redis_url, env=cli_env(None))
    assert out.returncode == 2
    assert "tokengate keygen" in _one_line(out.stderr)
