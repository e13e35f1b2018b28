"""D: nginx ``auth_request`` in front of the upstream, tokengate's decision endpoint deciding.

nginx runs the configuration tokengate ships (deploy/authz/nginx/), with its three
placeholders filled in and nothing else changed, so the figure is the one an ops team
copying that file gets. tokengate runs as C does (one worker, the same token, metrics
and the access line on, the rate limit on and never rejecting) with
``TOKENGATE_AUTHZ_ENABLED=true``. Both are pinned to the core the process under test
gets; their CPU and memory are added up as the side's.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from procs import SERVER_CORE, BenchError, Processes, free_port, require_tool, wait_for_port
from sides import REPO, Side, TokengateEnv, nginx_conf, start_tokengate

SHIPPED = REPO / "deploy" / "authz" / "nginx"
SERVER_BLOCK = SHIPPED / "tokengate.conf"
SNIPPET = SHIPPED / "tokengate-authz.conf"
# Where the server block includes the snippet from (relative to nginx's conf directory).
SNIPPET_INCLUDE = Path("snippets") / SNIPPET.name
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


def available() -> str | None:
    """None when D can be started here, else the reason it cannot."""
    if not (REPO / "gateway" / "proxy" / "authz.py").exists():
        return "gateway/proxy/authz.py does not exist yet"
    missing = [p.relative_to(REPO) for p in (SERVER_BLOCK, SNIPPET) if not p.exists()]
    if missing:
        return f"the shipped nginx config is missing: {', '.join(map(str, missing))}"
    return None


def render(text: str, values: dict[str, str]) -> str:
    """Fill the shipped file's ``${NAME}`` placeholders, as tests/authz/ does.

    The placeholders must be exactly the documented ones: one without a value would
    reach nginx as a variable and stop it far from the cause.
    """
    names = set(_PLACEHOLDER.findall(text))
    if names != set(values):
        raise BenchError(f"{SERVER_BLOCK.relative_to(REPO)} has placeholders {sorted(names)}; "
                         f"the bench fills {sorted(values)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def start(procs: Processes, workdir: Path, tg: TokengateEnv, upstream_port: int) -> Side:
    """D: tokengate with the decision endpoint on, and nginx with the shipped config."""
    decider = start_tokengate(procs, tg, upstream_port, name="tokengate-authz",
                              settings={"TOKENGATE_AUTHZ_ENABLED": "true"})
    exe = require_tool("nginx", "nginx")
    port = free_port()
    server = render(SERVER_BLOCK.read_text(), {
        "TOKENGATE": f"127.0.0.1:{decider.port}",
        "UPSTREAM": f"127.0.0.1:{upstream_port}",
        "LISTEN": f"127.0.0.1:{port}",
    })
    name = "nginx-d"
    # The access log as B writes it (buffered); the rest is the shipped server block,
    # included into the http context as its header says.
    conf = nginx_conf(workdir, name, f"""
    access_log {workdir / name}/access.log combined buffer=64k flush=1s;
    include conf.d/{SERVER_BLOCK.name};""")
    (conf.parent / "conf.d").mkdir()
    (conf.parent / "conf.d" / SERVER_BLOCK.name).write_text(server)
    (conf.parent / SNIPPET_INCLUDE).parent.mkdir()
    shutil.copyfile(SNIPPET, conf.parent / SNIPPET_INCLUDE)
    proc = procs.start(name, [exe, "-p", str(conf.parent), "-e", "stderr", "-c", str(conf)],
                       cores=SERVER_CORE)
    wait_for_port(port, proc, name, procs)
    return Side("D", "nginx + tokengate authz", port, proc,
                {"config": str(SHIPPED.relative_to(REPO)), "tokengate_port": str(decider.port),
                 **{f"tokengate_{k}": v for k, v in decider.notes.items()}},
                companions=[decider.proc])
