"""Start-up errors: bad configuration and a missing master key exit 2 with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.keys import generate_master_key
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


NOT_UTF8 = b'[proxy]\nlisten = "127.0.0.1:8081"\n# caf\xe9 (Latin-1)\n'


@pytest.mark.parametrize("argv", [
    ["config", "check"],
    ["user", "list", "--store", "memory://"],
    ["token", "create", "--type", "workspace", "--name", "x", "--store", "memory://"],
    ["serve", "--store", "memory://", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
], ids=["config check", "user list", "token create", "serve"])
def test_a_config_file_that_is_not_utf8_is_one_line_exit_2(tmp_path: Path,
                                                           argv: list[str]) -> None:
    """A Latin-1 config file is one line naming the file and UTF-8, exit 2, no traceback."""
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes(NOT_UTF8)
    out = run_cli(*argv, "--config", str(cfg), env=cli_env(generate_master_key()), timeout=20)
    assert out.returncode == 2
    line = _one_line(out.stderr)
    assert line.startswith(f"tokengate: {cfg}: not UTF-8 text") and out.stdout == ""


def test_an_admin_key_file_that_is_not_utf8_is_one_line_without_its_bytes(
        tmp_path: Path) -> None:
    """TOKENGATE_ADMIN_KEY_FILE naming a binary file is one line, exit 2, that does
    not echo the (secret) bytes."""
    path = tmp_path / "admin-key"
    path.write_bytes(b"\xffsecret-admin-key-bytes")
    out = run_cli("config", "check", env=cli_env(None, TOKENGATE_ADMIN_KEY_FILE=str(path)))
    assert out.returncode == 2
    line = _one_line(out.stderr)
    assert "TOKENGATE_ADMIN_KEY_FILE" in line and "not UTF-8" in line
    assert "secret-admin" not in line


def _config(tmp_path: Path, name: str, listen: str) -> Path:
    cfg = tmp_path / name
    cfg.write_text(f'[proxy]\nlisten = "{listen}"\n')
    return cfg


def test_tokengate_config_names_the_config_file(tmp_path: Path) -> None:
    """TOKENGATE_CONFIG is the file --config would name; the flag wins over it."""
    by_env = _config(tmp_path, "env.toml", "127.0.0.1:8181")
    by_flag = _config(tmp_path, "flag.toml", "127.0.0.1:8282")
    env = cli_env(None, TOKENGATE_CONFIG=str(by_env))
    out = run_cli("config", "check", env=env)
    assert out.returncode == 0, out.stderr
    assert "proxy 127.0.0.1:8181" in out.stdout
    out = run_cli("config", "check", "--config", str(by_flag), env=env)
    assert out.returncode == 0, out.stderr
    assert "proxy 127.0.0.1:8282" in out.stdout


def test_tokengate_config_naming_a_missing_file_is_refused(tmp_path: Path) -> None:
    """A TOKENGATE_CONFIG that names no file is one line naming it, exit 2."""
    missing = tmp_path / "missing.toml"
    out = run_cli("config", "check", env=cli_env(None, TOKENGATE_CONFIG=str(missing)))
    assert out.returncode == 2
    assert str(missing) in _one_line(out.stderr)


def test_store_commands_read_the_store_from_tokengate_config(tmp_path: Path,
                                                             redis_url: str) -> None:
    """A store command takes store.url and store.prefix from the TOKENGATE_CONFIG file."""
    import redis

    cfg = tmp_path / "store.toml"
    cfg.write_text(f'[store]\nurl = "{redis_url}"\nprefix = "viaenv:"\n')
    out = run_cli("user", "add", "alice", "--role", "admin",
                  env=cli_env(generate_master_key(), TOKENGATE_CONFIG=str(cfg)))
    assert out.returncode == 0, out.stderr
    from gateway.store.layout import Layout

    assert redis.Redis.from_url(redis_url).exists(Layout("viaenv:").user("default", "alice")) == 1


def test_serve_reads_tokengate_config(gateway_factory, redis_url: str,  # type: ignore[no-untyped-def]
                                      tmp_path: Path) -> None:
    """`serve` applies the TOKENGATE_CONFIG file (here: text logs instead of JSON)."""
    cfg = tmp_path / "serve.toml"
    cfg.write_text('[log]\nformat = "text"\n')
    gp = gateway_factory(store_url=redis_url, upstream="http://127.0.0.1:9",
                         extra_env={"TOKENGATE_CONFIG": str(cfg)})
    listening = [line for line in gp.logs().splitlines() if "tokengate listening" in line]
    assert listening and not listening[0].lstrip().startswith("{"), gp.logs()


def test_serve_refuses_a_memory_store_with_several_workers() -> None:
    """`serve --store memory:// --workers 2` exits 2 at start, saying why, and listens nowhere."""
    out = run_cli("serve", "--store", "memory://", "--workers", "2",
                  "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                  env=cli_env(generate_master_key()), timeout=20)
    assert out.returncode == 2
    line = _one_line(out.stderr)
    assert "--workers 2" in line and "memory://" in line and "redis://" in line


# Usage errors the parser cannot see (or can, by type): each is exit 2, one line of
# error after argparse's usage, no traceback.
USAGE_ERRORS = [
    (["user", "add", "bad name", "--role", "admin"], "not a valid username"),
    (["user", "remove", "bad name"], "not a valid username"),
    (["user", "add", "ok", "--role", "admin", "--workspace", "Bad WS!"],
     "not a valid workspace name"),
    (["user", "list", "--workspace", "x y"], "not a valid workspace name"),
    (["token", "create", "--type", "workspace", "--name", "x", "--expires-in-days", "0"],
     "--expires-in-days: must be at least 1"),
    (["token", "create", "--type", "workspace", "--name", "x", "--expires-in-days", "ten"],
     "--expires-in-days: not an integer"),
    (["token", "create", "--type", "workspace", "--name", "x", "--expires-in-days", "400"],
     "expires_in_days: must be between 1 and 365"),
    (["token", "create", "--type", "member", "--name", "x", "--actor", "no one"],
     "not a valid username"),
    (["token", "import-personal", "--token", "t", "--secret", "s", "--user", "a b"],
     "not a valid username"),
    (["audit", "--limit", "-1"], "--limit: must be from 1 to 1000"),
    (["audit", "--limit", "0"], "--limit: must be from 1 to 1000"),
    (["audit", "--limit", "1001"], "--limit: must be from 1 to 1000"),
    (["member-tokens", "enable", "--workspace", "-"], "--workspace"),
    (["serve", "--workers", "0"], "--workers: must be at least 1"),
]


@pytest.mark.parametrize(("argv", "says"), USAGE_ERRORS,
                         ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_naming_the_value(argv: list[str], says: str) -> None:
    """A bad name or number exits 2 with its error on the last line, no traceback."""
    store = [] if argv[0] == "serve" else ["--store", "memory://"]
    out = run_cli(*argv, *store, env=cli_env(generate_master_key()), timeout=20)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert says in out.stderr.strip().splitlines()[-1]
