"""Method overrides (headers, ``_method``, form bodies) cannot route a method the rules did not check."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.policy.headers import dropped_request_header
from gateway.policy.methods import candidate_methods, is_override_header
from gateway.policy.rules import DEFAULT_RULES
from tests.conftest import RecordingUpstream, basic
from tests.rules.support import (
    GatewayFactory,
    problem,
    process_member_token,
    process_token,
    raw_request,
)

CLONE = "/api/default/reports/r1/runs/run9/clone"
INVITES = "/api/default/invites"
MESSAGES = {rule["name"]: rule["message"] for rule in DEFAULT_RULES}
FORM = "application/x-www-form-urlencoded"

# --- the pure part: which methods could the upstream route? -------------------

Headers = list[tuple[str, str]]
CANDIDATES: list[tuple[str, Headers, str, str, bool, tuple[str, ...] | None, str]] = [
    # (method, headers, raw query, normalised path, has body, candidates, why)
    ("GET", [("Accept", "*/*")], "", CLONE, False, None, "nothing overrides"),
    ("GET", [("X-HTTP-Method-Override", "POST")], "", CLONE, False, ("GET", "POST"),
     "X-HTTP-Method-Override"),
    ("GET", [("x-http-method", "post")], "", CLONE, False, ("GET", "POST"),
     "X-HTTP-Method, any case, value upper-cased"),
    ("GET", [("X-METHOD-OVERRIDE", " Post ")], "", CLONE, False, ("GET", "POST"),
     "X-Method-Override, value stripped"),
    ("GET", [("X_HTTP_Method_Override", "POST")], "", CLONE, False, ("GET", "POST"),
     "'_' for '-' as CGI/WSGI map it"),
    ("GET", [("X-HTTP-Method-Override", "PUT, POST")], "", CLONE, False, ("GET", "PUT", "POST"),
     "every comma-separated value"),
    ("GET", [("X-HTTP-Method", "PUT"), ("X-HTTP-Method", "POST")], "", CLONE, False,
     ("GET", "PUT", "POST"), "every repeated header"),
    ("GET", [("X-HTTP-Method-Override", "BREW")], "", CLONE, False, ("GET", "BREW"),
     "an unknown method is a candidate too"),
    ("GET", [("X-HTTP-Method-Override", " ")], "", CLONE, False, None, "an empty value is ignored"),
    ("GET", [("X-HTTP-Method-Overrides", "POST")], "", CLONE, False, None, "another header"),
    ("GET", [], "_method=POST", CLONE, False, ("GET", "POST"), "a _method query parameter"),
    ("GET", [], "a=1&_method=post", CLONE, False, ("GET", "POST"), "any case of the value"),
    ("GET", [], "_method=%50OST", CLONE, False, ("GET", "POST"), "a percent-encoded value"),
    ("GET", [], "%5Fmethod=POST", CLONE, False, ("GET", "POST"), "a percent-encoded name"),
    ("GET", [], "_m%65thod=POST", CLONE, False, ("GET", "POST"), "an escaped letter in the name"),
    ("GET", [], "_METHOD=POST", CLONE, False, ("GET", "POST"), "any case of the name"),
    ("GET", [], ".method=POST", CLONE, False, ("GET", "POST"), "PHP turns '.' into '_'"),
    ("GET", [], "x=1;_method=POST", CLONE, False, ("GET", "POST"), "';' separates, as in Rack"),
    ("GET", [], "_method=PUT&_method=POST", CLONE, False, ("GET", "PUT", "POST"),
     "every repeated parameter"),
    ("GET", [], "sort_method=POST", CLONE, False, None, "another parameter"),
    ("GET", [], "q=%41&method=POST", CLONE, False, None, "'method' is not '_method'"),
    ("GET", [], "_method=", CLONE, False, None, "an empty value is ignored"),
    ("GET", [], "", "/api/default/invites;_method=POST", False, ("GET", "POST"),
     "a ';' path parameter"),
    ("POST", [("Content-Type", FORM)], "", CLONE, True, ("POST", "*"),
     "a urlencoded form POST could carry any _method"),
    ("POST", [("content-type", "Multipart/Form-Data; boundary=x")], "", CLONE, True, ("POST", "*"),
     "a multipart form POST, any case, with parameters"),
    ("POST", [], "", CLONE, True, ("POST", "*"), "Rack reads a POST body without type as a form"),
    ("POST", [], "", CLONE, False, None, "a POST without body carries no field"),
    ("POST", [("Content-Type", "application/json")], "", CLONE, True, None, "JSON is no form"),
    ("PUT", [("Content-Type", FORM)], "", CLONE, True, None, "only POST is overridden by a field"),
    ("POST", [("Content-Type", FORM), ("X-HTTP-Method", "DELETE")], "_method=PUT", CLONE, True,
     ("POST", "DELETE", "PUT", "*"), "everything at once"),
]


@pytest.mark.parametrize(("method", "headers", "query", "path", "has_body", "expected", "why"),
                         CANDIDATES, ids=[c[6] for c in CANDIDATES])
def test_candidate_methods(
    method: str, headers: Headers, query: str, path: str, has_body: bool,
    expected: tuple[str, ...] | None, why: str,
) -> None:
    """Every method a framework could route the request as is a candidate; the usual request has none."""
    assert candidate_methods(method, CIMultiDict(headers), raw_query=query, path=path,
                             has_body=has_body) == expected


@pytest.mark.parametrize(("name", "override"), [
    ("X-HTTP-Method-Override", True), ("x-http-method", True), ("X-Method-Override", True),
    ("X_HTTP_METHOD", True), ("x_method-override", True),
    ("X-HTTP-Methods", False), ("X-Method", False), ("Method", False), ("Content-Type", False),
])
def test_override_header_names(name: str, override: bool) -> None:
    """Any case and '_' spelling of the three override headers is one; nothing else is."""
    assert is_override_header(name) is override


@pytest.mark.parametrize(("strip", "dropped"), [(True, True), (False, False)])
def test_override_headers_are_dropped_unless_forwarded(strip: bool, dropped: bool) -> None:
    """Override headers are dropped on the way upstream by default, kept with method_overrides=False."""
    for name in ("X-HTTP-Method-Override", "X_HTTP_Method", "x-method-override"):
        assert dropped_request_header(name, frozenset(), method_overrides=strip) is dropped
    assert dropped_request_header("Accept", frozenset(), method_overrides=True) is False


# --- end to end through a real gateway process ---------------------------------

# Spellings of "GET, but route it as POST" (headers, query) on each denied path.
OVERRIDES: list[tuple[dict[str, str], str]] = [
    ({"X-HTTP-Method-Override": "POST"}, ""),
    ({"X-HTTP-Method": "post"}, ""),
    ({"X-Method-Override": "POST"}, ""),
    ({"X_HTTP_Method_Override": "POST"}, ""),
    ({"X-HTTP-Method-Override": "GET, POST"}, ""),
    ({}, "?_method=POST"),
    ({}, "?x=1&_method=post"),
    ({}, "?%5Fmethod=POST"),
]


@pytest.mark.parametrize("kind", ["workspace", "member"])
async def test_overrides_to_a_denied_method_are_refused(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream, kind: str
) -> None:
    """GET with an override header or ``_method`` naming POST gets the default rules' 403, for workspace and member tokens."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    token, secret = await (process_token(gp) if kind == "workspace" else process_member_token(gp))
    for rule, path in [("clone-report-run", CLONE), ("create-invite", INVITES)]:
        for headers, query in OVERRIDES:
            response = await raw_request(gp.proxy, "GET", path + query,
                                         headers={"Authorization": basic(token, secret), **headers})
            assert response.status == 403, (path, headers, query, response)
            body = problem(response)
            assert (body["rule"], body["detail"]) == (rule, MESSAGES[rule])
    assert upstream.seen == []
    # Without an override the same GETs are not denied.
    response = await raw_request(gp.proxy, "GET", CLONE, headers={"Authorization": basic(token, secret)})
    assert response.status == 200 and upstream.seen[-1].method == "GET"


DELETE_RULE = """
[[deny]]
name = "no-report-delete"
methods = ["DELETE"]
path = "/api/{workspace}/reports/{report}"
token_types = ["workspace"]
message = "reports are deleted by people"
"""


async def test_form_post_could_be_any_method(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """A form POST (whose ``_method`` field the gateway does not read) is refused where any method is denied; a JSON POST is not."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text=DELETE_RULE)
    auth = {"Authorization": basic(*await process_token(gp))}
    path = "/api/default/reports/r1"
    multipart = (b'--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\n'
                 b"DELETE\r\n--b--\r\n")
    for content_type, body in [(FORM, b"_method=DELETE"),
                               ("multipart/form-data; boundary=b", multipart)]:
        response = await raw_request(gp.proxy, "POST", path, body=body,
                                     headers={**auth, "Content-Type": content_type})
        assert response.status == 403, (content_type, response)
        assert problem(response)["rule"] == "no-report-delete"
    response = await raw_request(gp.proxy, "POST", path, body=b"_method=DELETE", headers=auth)
    assert response.status == 403 and problem(response)["rule"] == "no-report-delete"
    assert upstream.seen == []
    response = await raw_request(gp.proxy, "POST", path, body=b'{"_method": "DELETE"}',
                                 headers={**auth, "Content-Type": "application/json"})
    assert response.status == 200 and upstream.seen[-1].method == "POST"


def override_headers_seen(headers: list[tuple[str, str]]) -> list[str]:
    """The override headers (any spelling) among what the upstream received."""
    return [name for name, _ in headers if is_override_header(name)]


async def test_default_config_strips_override_headers(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """With the default config the upstream never sees an override header, in any spelling."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url)
    auth = {"Authorization": basic(*await process_token(gp))}
    sent = {"X-HTTP-Method-Override": "PUT", "x-http-method": "PATCH",
            "X-Method-Override": "DELETE", "X_HTTP_Method_Override": "PUT"}
    response = await raw_request(gp.proxy, "GET", "/api/default/reports/r1",
                                 headers={**auth, **sent, "X-Other": "kept"})
    assert response.status == 200, response
    (seen,) = upstream.seen
    assert override_headers_seen(seen.headers) == []
    assert ("X-Other", "kept") in seen.headers


FORWARD = '[proxy]\nmethod_override_headers = "forward"\n'


async def test_forward_mode_still_checks_overrides(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """With ``method_override_headers = "forward"`` an override naming a denied method is still refused."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text=FORWARD)
    auth = {"Authorization": basic(*await process_token(gp))}
    for headers, query in OVERRIDES:
        response = await raw_request(gp.proxy, "GET", INVITES + query, headers={**auth, **headers})
        assert response.status == 403 and problem(response)["rule"] == "create-invite"
    assert upstream.seen == []


async def test_forward_mode_passes_allowed_overrides_on(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """With ``method_override_headers = "forward"`` an override no rule denies reaches the upstream."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text=FORWARD)
    auth = {"Authorization": basic(*await process_token(gp))}
    response = await raw_request(gp.proxy, "POST", "/api/default/reports/r1",
                                 headers={**auth, "X-HTTP-Method-Override": "PATCH"})
    assert response.status == 200, response
    assert override_headers_seen(upstream.seen[-1].headers) == ["X-HTTP-Method-Override"]


CLASSES = """
[rate_limit]
limit = 5
window_seconds = 10

[[rate_limit.classes]]
name = "reads"
methods = ["GET"]
path = "/api/{workspace}/reports/**"
limit = 50
"""


async def test_an_override_never_buys_a_laxer_rate_limit_class(
    gateway_factory: GatewayFactory, redis_url: str, upstream: RecordingUpstream
) -> None:
    """A GET that names another method is limited by the stricter of the two classes."""
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, config_text=CLASSES)
    auth = {"Authorization": basic(*await process_token(gp))}
    path = "/api/default/reports/r1"
    plain = await raw_request(gp.proxy, "GET", path, headers=auth)
    assert plain.status == 200 and plain.headers["X-RateLimit-Limit"] == "50"
    for headers, query in [({"X-HTTP-Method-Override": "DELETE"}, ""), ({}, "?_method=DELETE")]:
        response = await raw_request(gp.proxy, "GET", path + query, headers={**auth, **headers})
        assert response.status == 200, response
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["RateLimit-Policy"].startswith('"default";')
