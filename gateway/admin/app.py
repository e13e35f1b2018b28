"""The control plane: health, metrics and the admin API, on its own listener."""

from __future__ import annotations

import logging
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.admin.api import register_api
from gateway.admin.guard import AdminGuard
from gateway.metrics import exposition
from gateway.policy.errors import NotFound, Problem, StoreUnavailable
from gateway.proxy.app import GATEWAY
from gateway.proxy.problems import http_problem, problem_response
from gateway.runtime import Gateway
from gateway.store.base import StoreError
from gateway.trusted.admin import register_trusted_admin

log = logging.getLogger("tokengate.admin")

API_PREFIX = "/admin/api/"


GUARD = web.AppKey("admin_guard", AdminGuard)


@web.middleware
async def admin_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Problems become problem+json; the store being down becomes 503."""
    try:
        try:
            return await handler(request)
        except StoreError:
            raise StoreUnavailable() from None
    except Problem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(http_problem(exc))
    except Exception:
        log.exception("unhandled error in the admin API")
        return problem_response(Problem("internal error"))


@web.middleware
async def admin_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request: a ``Host`` this listener answers; ``/admin/api``: the admin key."""
    guard = request.app[GUARD]
    guard.check_host(request.headers.get("Host"))
    if request.path.startswith(API_PREFIX) and request.path != API_PREFIX + "openapi.json":
        await guard.check_key(request.headers.get("Authorization"), request.remote or "")
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    """The process is alive."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the store answers and the process is not draining."""
    gw = request.app[GATEWAY]
    if gw.draining:
        return web.json_response({"status": "draining"}, status=503)
    try:
        await gw.store.ping()
    except StoreError:
        return web.json_response({"status": "store unavailable"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition (all workers aggregated in multiprocess mode)."""
    body, content_type = exposition(request.app[GATEWAY].metrics.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


PAGE_FILES = {
    "index.html": "text/html",
    "admin.js": "text/javascript",
    "admin.css": "text/css",
}
# The page talks only to this origin's API and runs no inline code.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def page(request: web.Request) -> web.Response:
    """The admin web page (a thin client of /admin/api) and its two static files."""
    name = request.match_info.get("file", "index.html")
    content_type = PAGE_FILES.get(name)
    if content_type is None:
        raise NotFound("no such file")
    body = resources.files("gateway.admin").joinpath("static", name).read_bytes()
    response = web.Response(body=body, headers=PAGE_HEADERS)
    response.content_type = content_type
    response.charset = "utf-8"
    return response


async def page_root(request: web.Request) -> web.Response:
    """``/admin`` is the page too: send the browser to ``/admin/``, where its links resolve."""
    raise web.HTTPPermanentRedirect("/admin/")


async def jwks(request: web.Request) -> web.Response:
    """The public key that verifies X-Tokengate-Assertion JWTs."""
    response = web.json_response(request.app[GATEWAY].signer.jwks())
    response.headers["Cache-Control"] = "max-age=300"
    return response


def build_admin_app(gw: Gateway) -> web.Application:
    """The admin listener's application."""
    app = web.Application(middlewares=[admin_errors, admin_gate], client_max_size=256 * 1024)
    app[GATEWAY] = gw
    app[GUARD] = AdminGuard(config=gw.settings.admin, store=gw.store, metrics=gw.metrics,
                            clock=gw.clock)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_get("/admin", page_root)
    app.router.add_get("/admin/", page)
    app.router.add_get("/admin/static/{file}", page)
    register_api(app)
    register_trusted_admin(app)
    return app
