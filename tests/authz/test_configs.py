"""The shipped proxy configs are valid for their proxies, and the copies of one config agree."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from gateway.trusted.endpoints import (
    V1_TOKEN,
    V2_NOT_IMPLEMENTED,
    V2_REVOKE,
    V2_TOKEN,
    V2_VALIDATE,
)
from tests.authz.emulated import ENVOY, TRAEFIK, load
from tests.authz.proxies import (
    CADDYFILE,
    DEPLOY,
    NGINX_SERVER,
    NGINX_SNIPPET,
    Nginx,
    caddy_env,
    executable,
    render,
)
from tests.conftest import free_port

INGRESS = DEPLOY / "ingress-nginx" / "ingress.yaml"
ANNOTATION = "nginx.ingress.kubernetes.io/"


def ingresses() -> list[Any]:
    """The Ingress documents of ingress.yaml: the application's, then the token requests'."""
    return list(yaml.safe_load_all(INGRESS.read_text()))


def directives(text: str) -> list[str]:
    """nginx config lines without comments, blank lines or indentation."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def block(text: str, opening: str) -> str:
    """The text of the ``{...}`` block that starts at ``opening``."""
    start = text.index(opening)
    depth, i = 0, text.index("{", start)
    while True:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i + 1]
        i += 1


def test_the_nginx_config_has_three_placeholders_and_passes_nginx_t(tmp_path: Path) -> None:
    """Rendered with ${TOKENGATE}, ${UPSTREAM} and ${LISTEN} only, the server block passes ``nginx -t``."""
    nginx = Nginx.__new__(Nginx)  # configure only: no process
    nginx.dir, nginx.port, nginx.log = tmp_path, free_port(), tmp_path / "error.log"
    main = nginx.configure("127.0.0.1:8080", "127.0.0.1:3000")
    check = subprocess.run(nginx.command(main, "-t"), check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr


def test_the_caddyfile_validates_and_adapts_with_its_environment(tmp_path: Path) -> None:
    """``caddy validate`` accepts the shipped Caddyfile; ``caddy adapt`` dials the TOKENGATE and UPSTREAM given."""
    env = caddy_env(tmp_path, TOKENGATE="10.1.2.3:8080", UPSTREAM="10.4.5.6:3000",
                    LISTEN="127.0.0.1:8081")
    caddy = executable("caddy")
    valid = subprocess.run([caddy, "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
                           env=env, check=False, capture_output=True, text=True)
    assert valid.returncode == 0, valid.stderr
    adapted = subprocess.run([caddy, "adapt", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
                             env=env, check=False, capture_output=True, text=True)
    assert adapted.returncode == 0, adapted.stderr
    config = json.loads(adapted.stdout)
    [server] = config["apps"]["http"]["servers"].values()
    # The host of LISTEN names the site (Caddy binds the port on every address).
    assert server["listen"] == [":8081"]
    assert server["routes"][0]["match"] == [{"host": ["127.0.0.1"]}]
    dials = re.findall(r'"dial":\s*"([^"]+)"', adapted.stdout)
    # The token requests and the decisions go to tokengate, the rest to the application.
    assert dials == ["10.1.2.3:8080", "10.1.2.3:8080", "10.4.5.6:3000"]


def test_the_yaml_configs_parse() -> None:
    """Envoy's, Traefik's and ingress-nginx's files are YAML of the expected kind."""
    assert load(ENVOY)["static_resources"]["listeners"]
    assert load(TRAEFIK)["http"]["middlewares"]["tokengate"]["forwardAuth"]["address"].endswith(
        "/_tokengate/authz")
    app, token_requests = ingresses()
    for ingress in (app, token_requests):
        assert (ingress["apiVersion"], ingress["kind"]) == ("networking.k8s.io/v1", "Ingress")
    assert app["metadata"]["annotations"][ANNOTATION + "auth-url"].endswith("/_tokengate/authz")
    # The token requests go to tokengate itself, undecided.
    assert "annotations" not in token_requests["metadata"]
    backends = {p["backend"]["service"]["name"]
                for p in token_requests["spec"]["rules"][0]["http"]["paths"]}
    assert backends == {"tokengate"}


def test_the_ingress_snippets_are_the_tested_nginx_lines() -> None:
    """ingress-nginx's snippets are lines of deploy/authz/nginx/ (run through real nginx), not a second copy to drift."""
    annotations = ingresses()[0]["metadata"]["annotations"]
    server = NGINX_SERVER.read_text()
    snippet = set(directives(NGINX_SNIPPET.read_text()))
    auth_location = set(directives(block(server, "location = /_tokengate_authz")))
    refusal = directives(block(server, "location @tokengate_refusal"))
    assert set(directives(annotations[ANNOTATION + "auth-snippet"])) <= auth_location
    assert set(directives(annotations[ANNOTATION + "configuration-snippet"])) <= snippet
    assert directives(annotations[ANNOTATION + "server-snippet"]) == refusal
    # Every value the refusal location reads is captured in the protected location.
    captured = {line.split()[1] for line in directives(annotations[ANNOTATION + "configuration-snippet"])
                if line.startswith("auth_request_set")}
    assert set(re.findall(r"\$tg_\w+", "\n".join(refusal))) <= captured
    # The identity headers come from auth-response-headers, as ingress-nginx generates them.
    named = annotations[ANNOTATION + "auth-response-headers"].split(",")
    assert [h.strip() for h in named] == ["X-Tokengate-User", "X-Tokengate-Role",
                                          "X-Tokengate-Token-Type", "X-Tokengate-Token",
                                          "X-Tokengate-Workspace"]


def test_the_traefik_regex_matches_every_spelling_go_can_give_a_name() -> None:
    """authResponseHeadersRegex covers X-Tokengate-* in Go's canonical forms ('-' or '_'), and only that family."""
    regex = re.compile(load(TRAEFIK)["http"]["middlewares"]["tokengate"]["forwardAuth"][
        "authResponseHeadersRegex"])
    for name in ("X-Tokengate-User", "X_tokengate_role", "X-Tokengate_workspace",
                 "X_tokengate-Token", "X-Tokengate-Anything"):
        assert regex.search(name), name
    for name in ("X-Tokengateway", "X-Request-Id", "Authorization", "My-X-Tokengate-User"):
        assert not regex.search(name), name


def test_the_placeholders_are_documented_in_each_file() -> None:
    """Every placeholder a file uses is named in its header comment, so a copy knows what to replace."""
    text = NGINX_SERVER.read_text()
    head = text[:text.index("upstream tokengate")]
    for name in ("TOKENGATE", "UPSTREAM", "LISTEN"):
        assert f"${{{name}}}" in head
    render(text, {"TOKENGATE": "a:1", "UPSTREAM": "b:2", "LISTEN": "3"})
    caddy = CADDYFILE.read_text()
    for name in ("TOKENGATE", "UPSTREAM", "LISTEN"):
        assert f"{{${name}:" in caddy
        assert f"#   {name}" in caddy


def test_every_config_sends_exactly_tokengates_token_requests_to_tokengate() -> None:
    """The paths routed to tokengate undecided are its trusted-auth endpoints, in all five configs."""
    public = {V2_TOKEN, V2_REVOKE, V2_VALIDATE, V1_TOKEN, *V2_NOT_IMPLEMENTED}
    near = [p + "x" for p in public] + [p + "/" for p in public] + ["/api/rest/2.0/auth/token/"]
    nginx_regex = re.search(r'location ~ "([^"]+)"', NGINX_SERVER.read_text())
    assert nginx_regex is not None
    routes = load(ENVOY)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    token_route = routes[0]
    assert token_route["route"] == {"cluster": "tokengate"}
    assert token_route["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
    for regex in (nginx_regex.group(1), token_route["match"]["safe_regex"]["regex"]):
        assert all(re.fullmatch(regex, p) for p in public), regex
        assert not any(re.fullmatch(regex, p) for p in near), regex
    caddy = re.search(r"@token_requests path (.+)", CADDYFILE.read_text())
    assert caddy is not None and set(caddy.group(1).split()) == public
    traefik = load(TRAEFIK)["http"]["routers"]["tokengate-token-requests"]
    assert set(re.findall(r"Path\(`([^`]+)`\)", traefik["rule"])) == public
    assert traefik["service"] == "tokengate" and "middlewares" not in traefik
    paths = ingresses()[1]["spec"]["rules"][0]["http"]["paths"]
    assert {p["path"] for p in paths} == public
    assert {p["pathType"] for p in paths} == {"Exact"}
