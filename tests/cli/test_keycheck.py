"""The master key check: a store refuses every process that holds another master key."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway.keys import Keys, generate_master_key
from tests.admin.support import cli_env, run_cli
from tests.cli.conftest import Cli
from tests.conftest import free_port, start_gateway

WRONG_KEY = "is not the master key this store was set up with"


def _other(cli: Cli) -> Cli:
    return Cli(cli.store, generate_master_key())


def _check_value(master_key: str) -> str:
    return Keys.from_master(base64.b64decode(master_key)).check_value()


# Every store command, each of which must be refused before it reads or writes.
STORE_COMMANDS = [
    ["user", "add", "mallory", "--role", "admin"],
    ["user", "list"],
    ["user", "remove", "alice"],
    ["token", "create", "--type", "workspace", "--name", "never-works"],
    ["token", "list"],
    ["token", "revoke", "tgw_0000000000000000000000000000"],
    ["token", "revoke-all"],
    ["token", "import-personal", "--token", "abcdef0123456789", "--secret", "s3cret-s3cret",
     "--user", "alice"],
    ["member-tokens", "enable"],
    ["audit"],
    ["trusted-auth", "enable", "--workspace", "default"],
    ["trusted-auth", "show", "--workspace", "default"],
    ["trusted-auth", "disable", "--workspace", "default"],
]


def _state(cli: Cli) -> dict[str, object]:
    return {"users": cli.json("user", "list"), "tokens": cli.json("token", "list"),
            "audit": cli.json("audit"),
            "key": cli.json("trusted-auth", "show", "--workspace", "default")["secret_key"]}


def test_store_commands_refuse_a_different_master_key(cli: Cli) -> None:
    """With another key than the store's, every store command exits 2 with one line
    naming the problem, prints nothing, and changes nothing."""
    cli.json("user", "add", "alice", "--role", "admin")
    cli.json("trusted-auth", "enable", "--workspace", "default")
    before = _state(cli)
    other = _other(cli)
    for argv in STORE_COMMANDS:
        out = other.run(*argv)
        assert (out.returncode, out.stdout) == (2, ""), (argv, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, (argv, out.stderr)
        assert lines[0].startswith("tokengate: TOKENGATE_MASTER_KEY " + WRONG_KEY), argv
    assert _state(cli) == before


def _everything(r: redis.Redis) -> Iterator[bytes]:
    """Every key and every value in the store, as bytes."""
    for key in r.scan_iter():
        yield key
        kind = r.type(key)
        if kind == b"string":
            yield r.get(key) or b""
        elif kind == b"hash":
            for field, value in r.hgetall(key).items():
                yield from (field, value)
        elif kind == b"set":
            yield from r.smembers(key)
        elif kind == b"zset":
            yield from r.zrange(key, 0, -1)
        elif kind == b"list":
            yield from r.lrange(key, 0, -1)
        else:
            raise AssertionError(f"unexpected {kind!r} at {key!r}")


def test_first_use_records_a_check_value_and_never_the_key(cli: Cli, redis_url: str) -> None:
    """The first command on an empty store records the key's check value; nothing in
    the store holds the master key or a subkey, and the same key keeps working."""
    cli.json("user", "add", "alice", "--role", "admin")
    r = redis.Redis.from_url(redis_url)
    assert r.get("tg:keycheck") == _check_value(cli.master_key).encode()
    keys = Keys.from_master(base64.b64decode(cli.master_key))
    raw = [base64.b64decode(cli.master_key), keys.hashing, keys.encryption, keys.signing,
           keys.check]
    secrets = [cli.master_key.encode(), *raw, *(k.hex().encode() for k in raw)]
    for item in _everything(r):
        assert not any(s in item for s in secrets), item
    assert [u["username"] for u in cli.json("user", "list")] == ["alice"]


def test_a_store_without_a_check_value_gets_one_on_first_use(cli: Cli, redis_url: str) -> None:
    """A store from before check values (data, no tg:keycheck) is taken over by the
    first key that uses it; a different key is refused after that."""
    cli.json("user", "add", "alice", "--role", "admin")
    r = redis.Redis.from_url(redis_url)
    r.delete("tg:keycheck")
    assert [u["username"] for u in cli.json("user", "list")] == ["alice"]
    assert r.get("tg:keycheck") == _check_value(cli.master_key).encode()
    assert WRONG_KEY in _other(cli).fails("user", "list", code=2)


def test_a_prefix_has_its_own_check_value(cli: Cli, redis_url: str, tmp_path: Path) -> None:
    """Two deployments sharing one Redis under different store.prefix values each
    keep their own master key."""
    cli.json("user", "add", "alice", "--role", "admin")
    cfg = tmp_path / "other.toml"
    cfg.write_text('[store]\nprefix = "other:"\n')
    other = _other(cli)
    out = other.run("user", "add", "bob", "--role", "admin", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    r = redis.Redis.from_url(redis_url)
    assert r.get("other:keycheck") == _check_value(other.master_key).encode()
    assert r.get("tg:keycheck") == _check_value(cli.master_key).encode()


def test_trusted_auth_show_with_an_undecryptable_key_is_one_line(cli: Cli,
                                                                  redis_url: str) -> None:
    """If the check value was reset (an operator's DEL) and the trusted-auth key was
    made under another master key, `show` says so in one line, no log record beside it."""
    cli.json("trusted-auth", "enable", "--workspace", "default")
    redis.Redis.from_url(redis_url).delete("tg:keycheck")
    line = _other(cli).fails("trusted-auth", "show", "--workspace", "default")
    assert line == ("tokengate: the stored secret_key cannot be decrypted with this master "
                    "key; disable and enable trusted authentication again")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_a_different_master_key(cli: Cli, redis_url: str, workers: str) -> None:
    """`serve` with another key than the store's exits 2 with one line (one worker or several)."""
    cli.json("user", "add", "alice", "--role", "admin")
    out = run_cli("serve", "--store", redis_url, "--listen", "127.0.0.1:0",
                  "--admin-listen", "127.0.0.1:0", "--workers", workers,
                  env=cli_env(generate_master_key()), timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokengate: TOKENGATE_MASTER_KEY " + WRONG_KEY)


class StoppableRedis:
    """A redis-server on a fixed port whose data (an RDB file) outlives a restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--dbfilename", "seed.rdb",
             "--logfile", os.path.join(self.dir, "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()  # answers only once the RDB is loaded
                return
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def save_and_stop(self) -> None:
        redis.Redis(port=self.port).save()
        self.stop()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def stoppable_redis(tmp_path: Path) -> Iterator[StoppableRedis]:
    """A redis-server of this test alone, which the test stops and starts again."""
    (tmp_path / "redis").mkdir()
    server = StoppableRedis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_started_before_its_store_refuses_a_different_key_once_it_answers(
    stoppable_redis: StoppableRedis, tmp_path: Path, workers: str,
) -> None:
    """A gateway that found its store unreachable at start serves (not ready), checks
    the key once the store answers, and stops with exit 2 on a different key."""
    store_key = generate_master_key()
    stoppable_redis.start()
    out = run_cli("user", "add", "alice", "--role", "admin", "--store", stoppable_redis.url,
                  env=cli_env(store_key))
    assert out.returncode == 0, out.stderr
    stoppable_redis.save_and_stop()

    gp = start_gateway(tmp_path, store_url=stoppable_redis.url, upstream="http://127.0.0.1:9",
                       extra_env={"TOKENGATE_STORE_TIMEOUT_SECONDS": "0.5"},
                       args=["--workers", workers])
    try:
        assert "the master key is checked once it answers" in gp.logs()
        stoppable_redis.start()  # loads the RDB: the store's check value is store_key's
        assert gp.proc.wait(30) == 2
    finally:
        gp.stop()
    logs = gp.logs()
    assert WRONG_KEY in logs and "Traceback" not in logs
    assert redis.Redis(port=stoppable_redis.port).get("tg:keycheck") == \
        _check_value(store_key).encode()


def test_serve_started_before_its_store_records_its_key_once_it_answers(
    stoppable_redis: StoppableRedis, tmp_path: Path,
) -> None:
    """On an empty store that was unreachable at start, the gateway records its own
    key's check value once the store answers, and keeps serving."""
    master_key = generate_master_key()
    gp = start_gateway(tmp_path, store_url=stoppable_redis.url, upstream="http://127.0.0.1:9",
                       master_key=master_key,
                       extra_env={"TOKENGATE_STORE_TIMEOUT_SECONDS": "0.5"})
    try:
        stoppable_redis.start()
        client = redis.Redis(port=stoppable_redis.port)
        deadline = time.monotonic() + 30
        while client.get("tg:keycheck") is None:
            assert time.monotonic() < deadline and gp.proc.poll() is None, gp.logs()
            time.sleep(0.05)
        assert client.get("tg:keycheck") == _check_value(master_key).encode()
        status, _ = gp.admin_call("GET", "/admin/api/users")
        assert status == 200 and gp.proc.poll() is None
    finally:
        assert gp.stop() == 0
