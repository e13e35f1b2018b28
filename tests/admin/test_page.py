"""The admin web page: served safely, and it calls only documented API routes
(tests/admin/test_page_browser.py drives it in a browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from tests.conftest import InProcess

STATIC = Path(__file__).resolve().parents[2] / "gateway" / "admin" / "static"


async def test_page_and_its_files_are_served_with_a_strict_policy(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """The page, script and style load without the admin key, under a CSP with no inline code."""
    g: InProcess = await make_gateway()
    async with aiohttp.ClientSession() as s:
        async with s.get(g.admin + "/admin/") as r:
            html = await r.text()
            assert r.status == 200 and r.content_type == "text/html"
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        for src in re.findall(r'(?:src|href)="(/admin/static/[^"]+)"', html):
            async with s.get(g.admin + src) as r:
                assert r.status == 200, src
        for bad in ("../app.py", "..%2Fapp.py", "index.htm", "openapi.json"):
            async with s.get(g.admin + "/admin/static/" + bad) as r:
                assert r.status == 404, bad
    assert "<script>" not in html and "onclick" not in html


async def test_admin_without_the_slash_redirects_to_the_page(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """``/admin`` answers a permanent redirect to ``/admin/`` (where the page's links resolve)."""
    g: InProcess = await make_gateway()
    async with aiohttp.ClientSession() as s:
        async with s.get(g.admin + "/admin", allow_redirects=False) as r:
            assert r.status == 308 and r.headers["Location"] == "/admin/"
        async with s.get(g.admin + "/admin") as r:
            assert r.status == 200 and r.url.path == "/admin/" and "<h1>tokengate</h1>" in await r.text()


def test_page_script_calls_only_documented_operations() -> None:
    """Every API call in the page's script is an operation of the OpenAPI document."""
    doc = json.loads((STATIC.parent / "openapi.json").read_text())
    script = (STATIC / "admin.js").read_text()
    calls = re.findall(r'api\("(GET|POST|PUT|DELETE)", "(/[a-z/-]*)"'
                       r'(?: \+ encodeURIComponent\([^)]*\)(?:\s*\+ "(/[a-z/-]*)")?)?', script)
    assert len(calls) >= 6
    for method, path, tail in calls:
        # A path ending in "/" is followed by a value in the script ("/tokens/" + id),
        # and maybe more path ("/tokens/" + id + "/roll").
        concrete = "/admin/api" + path + ("value" + tail if path.endswith("/") else "")
        candidates = [p for p in doc["paths"]
                      if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), concrete)]
        assert any(method.lower() in doc["paths"][p] for p in candidates), (method, path)


def test_page_never_stores_the_admin_key_and_inserts_only_text() -> None:
    """The script keeps the key in memory and never writes HTML from data."""
    script = (STATIC / "admin.js").read_text()
    for forbidden in ("localStorage", "sessionStorage", "document.cookie", "innerHTML",
                      "outerHTML", "insertAdjacentHTML", "eval("):
        assert forbidden not in script, forbidden
