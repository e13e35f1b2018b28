"""The Dockerfile: its structure, the files it copies, its health check and its install step."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import load_settings, parse_listen
from tests.ops.support import REPO

DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction, its arguments, and the build stage it belongs to."""

    keyword: str
    args: str
    stage: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, " ".join(args.split()), stage))
    assert not pending, "Dockerfile ends inside a continuation line"
    return out


INSTRUCTIONS = parse_dockerfile(DOCKERFILE)
FINAL_STAGE = max(i.stage for i in INSTRUCTIONS)


def final(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.keyword == keyword and i.stage == FINAL_STAGE]


def copies_from_context() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY/ADD from the build context (not --from a stage)."""
    out = []
    for ins in INSTRUCTIONS:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        words = json.loads(ins.args) if ins.args.startswith("[") else shlex.split(ins.args)
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        paths = [w for w in words if not w.startswith("--")]
        out.append((paths[:-1], paths[-1]))
    return out


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in final("ENV"):
        for word in shlex.split(ins.args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    # A pattern that matches a directory excludes everything under it.
    return re.compile(out + "(?:/.*)?")


def dockerignored(relpath: str) -> bool:
    """Whether .dockerignore keeps ``relpath`` out of the build context."""
    patterns = [
        ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if _ignore_regex(pattern.lstrip("!")).fullmatch(relpath):
            ignored = not negate
    return ignored


def test_both_stages_use_slim_python_311() -> None:
    """Every stage starts from the slim Python 3.11 image."""
    bases = [i.args.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert bases and all(b == "python:3.11-slim" for b in bases)


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    """Each file the Dockerfile COPYs exists and is not excluded by .dockerignore."""
    copies = copies_from_context()
    assert copies
    for sources, _ in copies:
        for source in sources:
            path = REPO / source
            assert path.exists(), f"COPY {source}: no such file in the repository"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            kept = [
                f for f in files
                if "__pycache__" not in f.parts and not dockerignored(str(f.relative_to(REPO)))
            ]
            assert kept, f"COPY {source}: excluded by .dockerignore"
            for f in files:
                rel = str(f.relative_to(REPO))
                if f.suffix in (".py", ".lua", ".toml", ".md", ".json", ".typed"):
                    assert "__pycache__" in f.parts or not dockerignored(rel), rel


def test_dockerignore_keeps_secrets_and_tests_out() -> None:
    """Local env files, keys, git history and tests never enter the build context."""
    for rel in (".env", "master.key", ".git/config", "tests/conftest.py", "gateway/__pycache__/x.pyc"):
        assert dockerignored(rel), rel
    assert not dockerignored("gateway/store/lua/ratelimit.lua")


def test_install_uses_runtime_dependencies_only() -> None:
    """The image installs the package with `pip install .`, without the test extra."""
    runs = " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN")
    assert "pip install ." in runs
    assert "[test]" not in runs and "pytest" not in runs


def test_final_stage_runs_as_a_non_root_user() -> None:
    """The last USER of the final stage is neither root nor uid 0."""
    users = final("USER")
    assert users, "no USER in the final stage"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0")


def test_exposes_proxy_and_admin_ports() -> None:
    """EXPOSE names the proxy port 8080 and the admin port 9090."""
    exposed = {p.split("/")[0] for i in final("EXPOSE") for p in i.args.split()}
    assert exposed == {"8080", "9090"}


def test_entrypoint_and_cmd() -> None:
    """ENTRYPOINT is ["tokengate"] and CMD is ["serve"], both in exec form."""
    assert [json.loads(i.args) for i in final("ENTRYPOINT")] == [["tokengate"]]
    assert [json.loads(i.args) for i in final("CMD")] == [["serve"]]


def test_env_binds_listeners_where_the_health_check_reaches() -> None:
    """The image's TOKENGATE_* env is valid config with proxy on :8080 and admin on 0.0.0.0:9090."""
    env = {k: v for k, v in final_env().items() if k.startswith("TOKENGATE_")}
    settings = load_settings(environ=env)
    assert parse_listen(settings.proxy.listen)[1] == 8080
    assert parse_listen(settings.admin.listen) == ("0.0.0.0", 9090)


def healthcheck_command() -> list[str]:
    (check,) = final("HEALTHCHECK")
    _, _, command = check.args.partition(" CMD ")
    argv: list[str] = json.loads(command)
    return argv


def test_healthcheck_probes_healthz_with_python() -> None:
    """HEALTHCHECK runs the standard library against http://127.0.0.1:9090/healthz (no curl in slim)."""
    argv = healthcheck_command()
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:9090/healthz" in argv[2]
    assert "--timeout=" in final("HEALTHCHECK")[0].args


@pytest.fixture
def health_server() -> Iterator[tuple[int, list[int]]]:
    """A local HTTP server whose /healthz answers with the status in the returned list."""
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0] if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], status
    server.shutdown()
    server.server_close()
    thread.join()


def run_healthcheck(port: int) -> int:
    argv = healthcheck_command()
    code = argv[2].replace("127.0.0.1:9090", f"127.0.0.1:{port}")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=False)
    return proc.returncode


def test_healthcheck_command_passes_on_200_and_fails_otherwise(
    health_server: tuple[int, list[int]],
) -> None:
    """The HEALTHCHECK snippet exits 0 on a 200 from /healthz and non-zero on 503 or no listener."""
    port, status = health_server
    assert run_healthcheck(port) == 0
    status[0] = 503
    assert run_healthcheck(port) != 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert run_healthcheck(closed) != 0


@pytest.mark.slow
def test_install_step_works_in_a_fresh_venv(tmp_path: Path) -> None:
    """The build stage's COPY and RUN steps, replayed in a temp dir, install a working `tokengate`."""
    src = tmp_path / "src"
    src.mkdir()
    build_stage = [i for i in INSTRUCTIONS if i.stage == 0]
    for sources, dest in copies_from_context():
        for source in sources:
            target = src / dest / (Path(source).name if dest.endswith("/") else "")
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(REPO / source, target)
    venv = tmp_path / "venv"
    (run,) = [i.args for i in build_stage if i.keyword == "RUN"]
    script = run.replace("/opt/tokengate", str(venv))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=src, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, f"the Dockerfile's RUN step failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    exe = venv / "bin" / "tokengate"
    help_ = subprocess.run([str(exe), "--help"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert help_.returncode == 0, help_.stderr
    assert "serve" in help_.stdout
    serve_help = subprocess.run([str(exe), "serve", "--help"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60, check=False)
    assert serve_help.returncode == 0, serve_help.stderr
    # Runtime dependencies only: the test tools are not in the image.
    no_pytest = subprocess.run([str(venv / "bin" / "python"), "-c", "import pytest"],
                               cwd=tmp_path, capture_output=True, timeout=60, check=False)
    assert no_pytest.returncode != 0
