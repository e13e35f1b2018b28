"""A bare aiohttp pass-through proxy: the floor tokengate is measured against.

No authentication, no rate limit, no metrics, no logging -- but the work any real
reverse proxy on this stack must do, done the way a careful one would: uvloop,
one pooled upstream ``ClientSession`` with keep-alive, request and response
bodies streamed (never read whole), hop-by-hop headers removed both ways, and
``X-Forwarded-*`` added. One process, one event loop.

    python bench/bare_proxy.py --listen 127.0.0.1:8081 --upstream http://127.0.0.1:8082
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 section 7.6.1; plus Host (the client session sets the upstream's own)
# and Content-Length (aiohttp recomputes it for a streamed body).
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    )
)
REQUEST_DROP = HOP_BY_HOP | {"host", "content-length"}
RESPONSE_DROP = HOP_BY_HOP

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


def _strip(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    """A copy of ``headers`` without hop-by-hop fields and the fields Connection names."""
    named: set[str] = set()
    for value in headers.getall("Connection", ()):
        named.update(v.strip().lower() for v in value.split(","))
    return CIMultiDict(
        (k, v) for k, v in headers.items() if k.lower() not in drop and k.lower() not in named
    )


async def forward(request: web.Request) -> web.StreamResponse:
    """Send ``request`` upstream and stream the answer back."""
    headers = _strip(request.headers, REQUEST_DROP)
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    body = request.content if request.body_exists else None
    url = request.app[UPSTREAM] + request.rel_url.raw_path_qs
    try:
        async with request.app[SESSION].request(
            request.method, url, headers=headers, data=body, allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                          headers=_strip(upstream.headers, RESPONSE_DROP))
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except aiohttp.ClientConnectionError:
        return web.Response(status=502, text="bad gateway\n")


def make_app(upstream: str) -> web.Application:
    """The proxy application: one catch-all route, one pooled client session."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=60, ttl_dns_cache=300)
        app[SESSION] = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=30),
        )
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    """Run the bare proxy until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8081")
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    try:
        import uvloop
    except ImportError:
        import sys

        print("bare_proxy: uvloop is not installed: running on asyncio's loop", file=sys.stderr)
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    web.run_app(make_app(args.upstream), host=host, port=int(port), access_log=None,
                print=None, loop=loop_factory() if loop_factory else None)


if __name__ == "__main__":
    main()
