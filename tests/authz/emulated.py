"""Envoy and Traefik, which cannot run here, asking tokengate the way their shipped configs make them ask.

Each emulation reads deploy/authz/envoy/envoy.yaml or traefik/dynamic.yml and
applies what the proxy documents for those settings: which client headers it
sends to the decision, the decision request's method and path, which answer
headers reach the upstream or the client. The decision itself is a real HTTP
request to a real tokengate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped]
from multidict import CIMultiDict

from tests.authz.proxies import DEPLOY
from tests.rules.support import raw_request

ENVOY = DEPLOY / "envoy" / "envoy.yaml"
TRAEFIK = DEPLOY / "traefik" / "dynamic.yml"
HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


def load(path: Path) -> Any:
    """A shipped YAML file, parsed."""
    return yaml.safe_load(path.read_text())


@dataclass
class Outcome:
    """What the client receives, and (when allowed) the headers the upstream would receive."""

    status: int
    client_headers: CIMultiDict[str]
    body: bytes
    upstream_headers: CIMultiDict[str] | None


def _matches(patterns: list[dict[str, Any]], name: str) -> bool:
    """Envoy's ListStringMatcher over a (lower-case) header name."""
    for p in patterns:
        if "exact" in p and name == p["exact"]:
            return True
        if "prefix" in p and name.startswith(p["prefix"]):
            return True
    return False


class Envoy:
    """The ext_authz HTTP filter of envoy.yaml, and the route's header removals."""

    name = "envoy"

    def __init__(self, tokengate: str) -> None:
        self.tokengate = tokengate
        hcm = load(ENVOY)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
            "typed_config"]
        self.hcm = hcm
        filters = {f["name"]: f["typed_config"] for f in hcm["http_filters"]}
        self.order = [f["name"] for f in hcm["http_filters"]]
        self.ext_authz = filters["envoy.filters.http.ext_authz"]
        self.lua = filters["envoy.filters.http.lua"]["default_source_code"]["inline_string"]
        service = self.ext_authz["http_service"]
        self.prefix = service["path_prefix"]
        response = service["authorization_response"]
        self.to_authz = self.ext_authz["allowed_headers"]["patterns"]
        self.to_upstream = response["allowed_upstream_headers"]["patterns"]
        self.to_client = response["allowed_client_headers"]["patterns"]
        self.to_client_ok = response["allowed_client_headers_on_success"]["patterns"]
        app_route = hcm["route_config"]["virtual_hosts"][0]["routes"][-1]
        assert app_route["match"] == {"prefix": "/"}
        self.removed = set(app_route["request_headers_to_remove"])

    def client_request(self, headers: dict[str, str]) -> dict[str, str]:
        """The request after the connection manager and the Lua filter, before ext_authz.

        HTTP/2-style lower-case names; names with '_' dropped
        (headers_with_underscores_action); x-tokengate-* removed by the Lua filter.
        """
        assert self.hcm["common_http_protocol_options"]["headers_with_underscores_action"] == \
            "DROP_HEADER"
        assert self.order.index("envoy.filters.http.lua") < self.order.index(
            "envoy.filters.http.ext_authz")
        assert '"x-tokengate-"' in self.lua
        return {k.lower(): v for k, v in headers.items()
                if "_" not in k and not k.lower().startswith("x-tokengate-")}

    def to_decision(self, request: dict[str, str]) -> dict[str, str]:
        """The client headers ext_authz passes to the decision (allowed_headers)."""
        return {k: v for k, v in request.items() if _matches(self.to_authz, k)}

    async def ask(self, method: str, target: str, headers: dict[str, str]) -> Outcome:
        """One client request through Envoy: the decision, then what reaches whom."""
        request = self.client_request(headers)
        # Envoy sends the original method, path_prefix + path (and query), the
        # allowed headers; Host, Content-Length are always sent.
        sent = self.to_decision(request)
        r = await raw_request(self.tokengate, method, self.prefix + target, headers=sent)
        answer = {k.lower(): v for k, v in r.headers.items()}
        if r.status == 200:
            upstream = CIMultiDict((k, v) for k, v in request.items() if k not in self.removed)
            for k, v in answer.items():
                if _matches(self.to_upstream, k):
                    upstream[k] = v
            client = CIMultiDict((k, v) for k, v in answer.items() if _matches(self.to_client_ok, k))
            return Outcome(200, client, b"", upstream)
        client = CIMultiDict((k, v) for k, v in answer.items() if _matches(self.to_client, k))
        return Outcome(r.status, client, r.body, None)


class Traefik:
    """The forwardAuth middleware of dynamic.yml, then the header-stripping middleware."""

    name = "traefik"

    def __init__(self, tokengate: str) -> None:
        self.tokengate = tokengate
        http = load(TRAEFIK)["http"]
        router = http["routers"]["app"]
        self.chain = router["middlewares"]
        auth, strip = (http["middlewares"][name] for name in self.chain)
        self.forward_auth = auth["forwardAuth"]
        self.path = urlsplit(self.forward_auth["address"]).path
        self.copied = self.forward_auth["authResponseHeaders"]
        self.regex = re.compile(self.forward_auth["authResponseHeadersRegex"])
        self.stripped = [k for k, v in strip["headers"]["customRequestHeaders"].items() if v == ""]

    async def ask(self, method: str, target: str, headers: dict[str, str]) -> Outcome:
        """One client request through Traefik: GET to the address with X-Forwarded-*, then the copies."""
        assert self.forward_auth["trustForwardHeader"] is False
        assert "authRequestHeaders" not in self.forward_auth  # every client header is passed
        sent = {k: v for k, v in headers.items()
                if k.lower() not in HOP_BY_HOP and not k.lower().startswith("x-forwarded-")}
        # Traefik's own description of the request (trustForwardHeader: false).
        sent.update({"X-Forwarded-Method": method, "X-Forwarded-Proto": "http",
                     "X-Forwarded-Host": "api.example", "X-Forwarded-Uri": target,
                     "X-Forwarded-For": "203.0.113.9"})
        r = await raw_request(self.tokengate, "GET", self.path, headers=sent)
        if not 200 <= r.status < 300:
            # Traefik answers a refusal with the decision's status, headers and body.
            return Outcome(r.status, r.headers, r.body, None)
        upstream = CIMultiDict((k, v) for k, v in headers.items() if not self.regex.search(k))
        for name in self.copied:
            if name in r.headers:
                upstream[name] = r.headers[name]
        for k, v in r.headers.items():
            if self.regex.search(k):
                upstream[k] = v
        for name in self.stripped:
            upstream.popall(name, None)
        return Outcome(r.status, CIMultiDict(), b"", upstream)


EMULATED: dict[str, type[Envoy | Traefik]] = {"envoy": Envoy, "traefik": Traefik}
