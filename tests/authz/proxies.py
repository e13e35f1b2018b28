"""Real nginx and Caddy processes running the shipped configs in deploy/authz/, and a threaded upstream.

What runs is the shipped file itself: nginx's is rendered by replacing its
documented ``${TOKENGATE}``/``${UPSTREAM}``/``${LISTEN}`` placeholders (what the
official nginx image's envsubst templates do), Caddy reads the same names
from the environment. Each process gets its own prefix, logs and temp paths
under the test's directory, and is stopped by its own pid.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from aiohttp import web

from tests.conftest import RecordingUpstream, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "authz"
NGINX_SERVER = DEPLOY / "nginx" / "tokengate.conf"
NGINX_SNIPPET = DEPLOY / "nginx" / "tokengate-authz.conf"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
PLACEHOLDER = re.compile(r"\$\{([A-Z]+)\}")


def executable(name: str, *fallbacks: str) -> str:
    """The path of a program scripts/test installs, or a clear error."""
    found = shutil.which(name) or next((p for p in fallbacks if os.access(p, os.X_OK)), None)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run scripts/test, which installs it")
    return found


def render(text: str, values: dict[str, str]) -> str:
    """Replace each documented ``${NAME}``; every placeholder must have a value."""
    names = set(PLACEHOLDER.findall(text))
    assert names == set(values), f"placeholders {sorted(names)} != {sorted(values)}"
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Return once ``port`` accepts connections; raise with the log if the process died."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"did not listen on {port}:\n{log.read_text(errors='replace')}")


class Proxy:
    """A proxy process in front of an upstream, asking tokengate."""

    name = ""

    def __init__(self, workdir: Path, *, tokengate: str, upstream: str) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "proxy.log"
        self.proc = self.start(tokengate.removeprefix("http://"), upstream.removeprefix("http://"))
        try:
            wait_listening(self.port, self.proc, self.log)
        except RuntimeError:
            self.stop()
            raise

    def start(self, tokengate: str, upstream: str) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the process this object started (by its pid)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Nginx(Proxy):
    """nginx with deploy/authz/nginx/ rendered into its own prefix."""

    name = "nginx"

    def configure(self, tokengate: str, upstream: str) -> Path:
        """Render the shipped files under this prefix; the main nginx.conf includes them."""
        conf = self.dir / "conf"
        (conf / "snippets").mkdir(parents=True, exist_ok=True)
        (conf / "tokengate.conf").write_text(render(NGINX_SERVER.read_text(), {
            "TOKENGATE": tokengate, "UPSTREAM": upstream, "LISTEN": f"127.0.0.1:{self.port}"}))
        shutil.copy(NGINX_SNIPPET, conf / "snippets" / NGINX_SNIPPET.name)
        temp = "\n".join(f"    {kind}_temp_path {self.dir / ('tmp-' + kind)};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        main = conf / "nginx.conf"
        main.write_text(f"""daemon off;
master_process on;
worker_processes 1;
pid {self.dir / 'nginx.pid'};
error_log {self.log} info;
events {{ worker_connections 256; }}
http {{
    access_log {self.dir / 'access.log'};
{temp}
    include tokengate.conf;
}}
""")
        return main

    def command(self, main: Path, *extra: str) -> list[str]:
        return [executable("nginx", "/usr/sbin/nginx"), "-p", str(self.dir), "-c", str(main),
                "-e", str(self.log), *extra]

    def start(self, tokengate: str, upstream: str) -> subprocess.Popen[bytes]:
        main = self.configure(tokengate, upstream)
        check = subprocess.run(self.command(main, "-t"), check=False, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        return subprocess.Popen(self.command(main), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)


def caddy_env(workdir: Path, **values: str) -> dict[str, str]:
    """An environment for caddy: the Caddyfile's placeholders, and its data dirs kept here."""
    env = {k: v for k, v in os.environ.items() if k not in ("TOKENGATE", "UPSTREAM", "LISTEN")}
    env.update(values)
    env.update({"HOME": str(workdir), "XDG_DATA_HOME": str(workdir / "data"),
                "XDG_CONFIG_HOME": str(workdir / "config")})
    return env


def caddy_wrapper(workdir: Path) -> Path:
    """A Caddyfile that imports the shipped one, adding only what a test run needs.

    The admin endpoint is off (tests run side by side), the listener is on
    loopback only, and Caddy's data dirs are the test's (:func:`caddy_env`).
    """
    wrapper = workdir / "Caddyfile"
    wrapper.write_text("{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n\n"
                       f"import {CADDYFILE}\n")
    return wrapper


class Caddy(Proxy):
    """caddy running deploy/authz/caddy/Caddyfile."""

    name = "caddy"

    def start(self, tokengate: str, upstream: str) -> subprocess.Popen[bytes]:
        env = caddy_env(self.dir, TOKENGATE=tokengate, UPSTREAM=upstream,
                        LISTEN=f"127.0.0.1:{self.port}")
        with self.log.open("wb") as log:
            return subprocess.Popen(
                [executable("caddy"), "run", "--adapter", "caddyfile",
                 "--config", str(caddy_wrapper(self.dir))],
                env=env, stdout=log, stderr=subprocess.STDOUT)


PROXIES: dict[str, type[Proxy]] = {"nginx": Nginx, "caddy": Caddy}


class ThreadedUpstream(RecordingUpstream):
    """The recording upstream on its own event loop in a thread, for module-long processes."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.app())
        port = free_port()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", port).start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="upstream", daemon=True)
        self.thread.start()
        if not started.wait(10):
            raise RuntimeError("the upstream did not start")
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Close the server and its loop."""
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
