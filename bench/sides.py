"""The processes under test and the helpers around them: Redis, the upstream, A, B, C and D."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from procs import (
    HELPER_CORE,
    SERVER_CORE,
    BenchError,
    Processes,
    RedisStats,
    free_port,
    require_tool,
    wait_for_http,
    wait_for_port,
)

REPO = Path(__file__).resolve().parent.parent
# A Mode-style API path inside the default workspace, so tokengate's workspace-scope
# check passes (and is paid for) as it would be on real traffic.
BENCH_PATH = "/api/default/reports/bench/runs"
STATUS_PATH = "/__bench_status"
UPSTREAM_BODY = '{"ok":true,"source":"bench-upstream","padding":"0123456789abcdef"}\n'


@dataclass
class Side:
    """One proxy under test: where it listens and the process to measure."""

    key: str
    label: str
    port: int
    proc: subprocess.Popen[bytes]
    notes: dict[str, str] = field(default_factory=dict)
    # Further processes the side is made of (D: tokengate behind nginx); their CPU and
    # memory count as the side's.
    companions: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        """Every process of the side: the one wrk talks to first."""
        return [self.proc.pid, *(p.pid for p in self.companions)]

    @property
    def url(self) -> str:
        """The URL wrk drives."""
        return f"http://127.0.0.1:{self.port}{BENCH_PATH}"


def start_redis(procs: Processes, workdir: Path) -> int:
    """A private redis-server on a free port (never the machine's own); returns the port."""
    exe = require_tool("redis-server", "redis-server")
    port = free_port()
    data = workdir / "redis"
    data.mkdir()
    proc = procs.start("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(data)], cores=HELPER_CORE)
    wait_for_port(port, proc, "redis", procs)
    if not RedisStats(port).ping():
        raise BenchError("the private redis-server does not answer PING")
    return port


def nginx_conf(workdir: Path, name: str, body: str) -> Path:
    """A self-contained nginx config with all paths under ``workdir/name``."""
    prefix = workdir / name
    prefix.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(f"""{user}worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
{body}
}}
""")
    return conf


def start_upstream(procs: Processes, workdir: Path) -> int:
    """The fast upstream: nginx answering ``return 200`` with a small JSON body."""
    exe = require_tool("nginx", "nginx")
    port = free_port()
    body = json.dumps(UPSTREAM_BODY)  # JSON escaping is valid inside an nginx double-quoted string
    conf = nginx_conf(workdir, "upstream", f"""
    access_log off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location / {{ return 200 {body}; }}
        # Counts every request that reached the upstream (the benchmark's denominator).
        location = {STATUS_PATH} {{ stub_status; }}
    }}""")
    proc = procs.start("upstream", [exe, "-p", str(conf.parent), "-e", "stderr", "-c", str(conf)],
                       cores=HELPER_CORE)
    wait_for_port(port, proc, "upstream", procs)
    return port


def upstream_requests(port: int) -> int:
    """Requests the upstream has handled so far, from nginx's ``stub_status``.

    The count includes this status request itself, as Redis's does its INFO.
    """
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{STATUS_PATH}", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return int(lines[2].split()[2])


def start_bare(procs: Processes, upstream_port: int, cores: str | None = SERVER_CORE) -> Side:
    """A: the bare aiohttp pass-through proxy, one process."""
    port = free_port()
    proc = procs.start("bare", [sys.executable, str(REPO / "bench" / "bare_proxy.py"),
                                "--listen", f"127.0.0.1:{port}",
                                "--upstream", f"http://127.0.0.1:{upstream_port}"], cores=cores)
    wait_for_port(port, proc, "bare", procs)
    return Side("A", "bare aiohttp", port, proc)


# --- B: nginx with auth_basic and limit_req -----------------------------------------------

HASHES = ("ssha", "apr1", "sha256-crypt", "sha512-crypt", "bcrypt")


def htpasswd_line(user: str, password: str, scheme: str) -> str:
    """One ``user:hash`` line for nginx's ``auth_basic_user_file``."""
    if scheme == "ssha":
        salt = secrets.token_bytes(8)
        digest = hashlib.sha1(password.encode() + salt).digest()
        return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}"
    if scheme == "bcrypt":
        exe = require_tool("htpasswd", "apache2-utils")
        out = subprocess.run([exe, "-nbB", "-C", "5", user, password], check=True,
                             capture_output=True, text=True).stdout
        return out.strip()
    flag = {"apr1": "-apr1", "sha256-crypt": "-5", "sha512-crypt": "-6"}[scheme]
    exe = require_tool("openssl", "openssl")
    out = subprocess.run([exe, "passwd", flag, "-stdin"], input=password, check=True,
                         capture_output=True, text=True).stdout
    return f"{user}:{out.strip()}"


def start_nginx(procs: Processes, workdir: Path, upstream_port: int, user: str, password: str,
                scheme: str) -> Side:
    """B: nginx, one worker, ``auth_basic`` + ``limit_req`` (never rejecting) + proxy_pass."""
    exe = require_tool("nginx", "nginx")
    port = free_port()
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(htpasswd_line(user, password, scheme) + "\n")
    conf = nginx_conf(workdir, "nginx-b", f"""
    access_log {workdir}/nginx-b/access.log combined buffer=64k flush=1s;
    # Keyed per user, as tokengate's limit is; a rate this high never rejects.
    limit_req_zone $remote_user zone=peruser:1m rate=100000000r/s;
    upstream app {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            auth_basic "tokengate-bench";
            auth_basic_user_file {htpasswd};
            limit_req zone=peruser burst=1000000 nodelay;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Remote-User $remote_user;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}""")
    proc = procs.start("nginx", [exe, "-p", str(conf.parent), "-e", "stderr", "-c", str(conf)],
                       cores=SERVER_CORE)
    wait_for_port(port, proc, "nginx", procs)
    return Side("B", "nginx auth_basic", port, proc, {"htpasswd": scheme})


# --- C: tokengate ------------------------------------------------------------------------

def tokengate_available() -> str | None:
    """None when ``tokengate serve`` can be tried here, else the reason it cannot."""
    if not (REPO / "gateway" / "cli.py").exists():
        return "gateway/cli.py does not exist yet"
    return None


@dataclass(frozen=True, slots=True)
class TokengateEnv:
    """Everything tokengate needs to run against the private Redis."""

    store_url: str
    master_key: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode())
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def environ(self) -> dict[str, str]:
        """The process environment: this one, minus stray TOKENGATE_* settings, plus ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.update(TOKENGATE_MASTER_KEY=self.master_key, TOKENGATE_ADMIN_KEY=self.admin_key,
                   TOKENGATE_RATE_LIMIT_LIMIT="100000000")
        return env


def tokengate_cli(tg: TokengateEnv, *args: str) -> str:
    """Run ``tokengate ARGS --store URL`` against the private Redis; its stdout."""
    cmd = [sys.executable, "-m", "gateway", *args, "--store", tg.store_url]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=tg.environ(),
                          cwd=REPO, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"`tokengate {' '.join(args)}` failed ({done.returncode}):\n"
                         f"{done.stdout}{done.stderr}")
    return done.stdout


def create_bench_token(tg: TokengateEnv) -> tuple[str, str]:
    """An admin user and a workspace token for it, through the CLI: (token, secret)."""
    tokengate_cli(tg, "user", "add", "benchadmin", "--role", "admin")
    out = tokengate_cli(tg, "token", "create", "--type", "workspace", "--name", "bench", "--json")
    try:
        created = json.loads(out[out.index("{"):])
        return str(created["token"]), str(created["secret"])
    except (ValueError, KeyError) as exc:
        raise BenchError(f"`tokengate token create --json` printed no token/secret: {out!r}") \
            from exc


def start_tokengate(procs: Processes, tg: TokengateEnv, upstream_port: int, *, workers: int = 1,
                    cores: str | None = SERVER_CORE, name: str = "tokengate",
                    settings: dict[str, str] | None = None, client: str = "lean",
                    key: str = "C") -> Side:
    """C: ``tokengate serve`` against the private Redis and the shared upstream.

    ``settings`` are further ``TOKENGATE_*`` variables (D turns the decision endpoint on);
    ``client`` is its ``upstream.client`` (E is C with aiohttp's client).
    """
    port, admin_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "gateway", "serve", "--listen", f"127.0.0.1:{port}",
           "--admin-listen", f"127.0.0.1:{admin_port}",
           "--upstream", f"http://127.0.0.1:{upstream_port}", "--store", tg.store_url]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    env = {**tg.environ(), "TOKENGATE_UPSTREAM_CLIENT": client, **(settings or {})}
    proc = procs.start(name, cmd, cores=cores, env=env, cwd=REPO)
    wait_for_port(port, proc, name, procs)
    wait_for_http(f"http://127.0.0.1:{admin_port}/readyz", proc, name, procs)
    label = "tokengate" if workers == 1 else f"tokengate x{workers}"
    if client != "lean":
        label += f" ({client} client)"
    return Side(key, label, port, proc, {"admin_port": str(admin_port), "client": client})
