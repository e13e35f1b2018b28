"""Token scopes, parsed and evaluated purely: grants only ever allow, never widen."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.errors import Unprocessable
from gateway.policy.paths import normalize_path
from gateway.policy.rules import ANY_METHOD, STANDARD_METHODS, compile_route_classes
from gateway.policy.scopes import READ_ONLY, grant_from_text, parse_scopes

CLASSES = compile_route_classes(
    [{"name": "reports", "methods": ["GET"], "path": "/api/{workspace}/reports/**", "limit": 100},
     {"name": "uploads", "path": "/api/{workspace}/uploads/**", "limit": 5}],
    default_limit=40, default_window=10)
NAMES = [c.name for c in CLASSES]
REPORTS = {"methods": ["GET"], "path": "/api/{workspace}/reports/**"}
RUNS = {"methods": ["POST"], "path": "/api/{workspace}/reports/{report}/runs"}


def allows(grants: list[Any], methods: tuple[str, ...], raw: str) -> bool:
    """Do these grants allow a request routed as ``methods`` on the raw path?"""
    return parse_scopes(grants, class_names=NAMES).allows(methods, normalize_path(raw), CLASSES)


@pytest.mark.parametrize(("grants", "methods", "path", "expected"), [
    # read-only: GET, HEAD, OPTIONS anywhere, nothing else anywhere
    ([READ_ONLY], ("GET",), "/api/acme/reports", True),
    ([READ_ONLY], ("HEAD",), "/anything/at/all", True),
    ([READ_ONLY], ("OPTIONS",), "/", True),
    ([READ_ONLY], ("POST",), "/api/acme/reports", False),
    ([READ_ONLY], ("DELETE",), "/api/acme/reports/r1", False),
    ([READ_ONLY], ("PATCH",), "/api/acme/reports/r1", False),
    # a path grant: its methods (GET brings HEAD) on what its pattern matches
    ([REPORTS], ("GET",), "/api/acme/reports", True),
    ([REPORTS], ("GET",), "/api/acme/reports/r1/runs/9", True),
    ([REPORTS], ("HEAD",), "/api/acme/reports/r1", True),
    ([REPORTS], ("GET",), "/api/acme/users", False),
    ([REPORTS], ("POST",), "/api/acme/reports", False),
    ([REPORTS], ("OPTIONS",), "/api/acme/reports", False),
    # the pattern language's spellings: case, dot segments, escapes, trailing slash
    ([REPORTS], ("GET",), "/API/acme/Reports/r1", True),
    ([REPORTS], ("GET",), "/api/acme/x/../reports/r1/", True),
    ([REPORTS], ("GET",), "/api/acme/rep%6Frts", True),
    ([REPORTS], ("GET",), "/api/acme/reports/../users", False),
    # several grants: any one may allow
    ([REPORTS, RUNS], ("POST",), "/api/acme/reports/r1/runs", True),
    ([REPORTS, RUNS], ("POST",), "/api/acme/reports/r1", False),
    ([REPORTS, RUNS], ("PUT",), "/api/acme/reports/r1/runs", False),
    # no methods named: every method on the path
    ([{"path": "/api/{workspace}/notes/**"}], ("DELETE",), "/api/acme/notes/n1", True),
    ([{"path": "/api/{workspace}/notes/**"}], ("GET",), "/api/acme/reports", False),
    ([{"methods": ["*"], "path": "/**"}], ("TRACE",), "/x", True),
    # a class grant: what the rate limiter files under that class
    ([{"class": "reports"}], ("GET",), "/api/acme/reports/r1", True),
    ([{"class": "reports"}], ("POST",), "/api/acme/reports/r1", False),  # POST is default's
    ([{"class": "reports"}], ("GET",), "/api/acme/users", False),
    ([{"class": "default"}], ("GET",), "/api/acme/users", True),
    ([{"class": "default"}], ("GET",), "/api/acme/reports", False),
    ([{"class": "uploads", "methods": ["PUT"]}], ("PUT",), "/api/acme/uploads/f", True),
    ([{"class": "uploads", "methods": ["PUT"]}], ("POST",), "/api/acme/uploads/f", False),
])
def test_a_request_passes_only_what_a_grant_allows(
        grants: list[Any], methods: tuple[str, ...], path: str, expected: bool) -> None:
    """Each method is allowed only on paths a grant's pattern (or class) covers."""
    assert allows(grants, methods, path) is expected


UPLOAD = "/api/acme/uploads/f"
REPORT = "/api/acme/reports/r1"


@pytest.mark.parametrize(("grants", "methods", "path", "expected"), [
    # An override names another method the upstream may route: each must be granted.
    ([READ_ONLY], ("GET", "DELETE"), REPORT, False),
    ([READ_ONLY], ("GET", "HEAD"), REPORT, True),
    ([REPORTS, {"methods": ["DELETE"], "path": "/api/{workspace}/reports/**"}],
     ("GET", "DELETE"), REPORT, True),
    # A form POST could carry any _method: only a grant for every method allows it.
    ([{"methods": ["POST"], "path": "/api/{workspace}/uploads/**"}], ("POST", ANY_METHOD),
     UPLOAD, False),
    ([{"path": "/api/{workspace}/uploads/**"}], ("POST", ANY_METHOD), UPLOAD, True),
    # A method outside the standard set could be routed as anything, too.
    ([{"methods": ["POST"], "path": "/api/{workspace}/uploads/**"}], ("post",), UPLOAD, False),
    ([READ_ONLY], ("get",), REPORT, False),
    ([{"path": "/api/{workspace}/uploads/**"}], ("post",), UPLOAD, True),
    # ... and a class grant allows it only if every method lands in that class.
    ([{"class": "uploads"}], ("POST", ANY_METHOD), UPLOAD, True),
    ([{"class": "reports"}], (ANY_METHOD,), REPORT, False),
    ([{"class": "default"}], ("x-custom",), REPORT, False),
])
def test_every_method_the_upstream_could_route_must_be_granted(
        grants: list[Any], methods: tuple[str, ...], path: str, expected: bool) -> None:
    """Method overrides, form POSTs and non-standard methods cannot slip past a scope."""
    assert allows(grants, methods, path) is expected


def test_a_class_grant_for_a_class_that_is_gone_matches_nothing() -> None:
    """Read back from the store without checking names, a removed class allows no request."""
    scopes = parse_scopes([{"class": "retired"}], class_names=None)
    for method in sorted(STANDARD_METHODS):
        assert not scopes.allows((method,), "/api/acme/reports", CLASSES)


@pytest.mark.parametrize(("value", "field", "words"), [
    ("read-only", "scopes", "list of grants"),
    ({"path": "/x"}, "scopes", "list of grants"),
    ([], "scopes", "at least one"),
    ([READ_ONLY] * 33, "scopes", "at most 32"),
    (["write-only"], "scopes[0]", "read-only"),
    ([3], "scopes[0]", "a grant is"),
    ([READ_ONLY, {"path": "/x", "verbs": ["GET"]}], "scopes[1]", "unknown key 'verbs'"),
    ([{"methods": ["GET"]}], "scopes[0]", "either path or class"),
    ([{"path": "/x", "class": "reports"}], "scopes[0]", "either path or class"),
    ([{"methods": [], "path": "/x"}], "scopes[0].methods", "non-empty list"),
    ([{"methods": "GET", "path": "/x"}], "scopes[0].methods", "non-empty list"),
    ([{"methods": ["get"], "path": "/x"}], "scopes[0].methods", "upper-case: 'GET'"),
    ([{"methods": ["FETCH"], "path": "/x"}], "scopes[0].methods", "unknown method 'FETCH'"),
    ([{"methods": [1], "path": "/x"}], "scopes[0].methods", "strings"),
    ([{"path": "api/x"}], "scopes[0].path", "must start with '/'"),
    ([{"path": "/a/**/b"}], "scopes[0].path", "'**' may only be the last"),
    ([{"path": "/a/{}"}], "scopes[0].path", "empty parameter"),
    ([{"path": ""}], "scopes[0].path", "1-512"),
    ([{"path": "/" + "a" * 512}], "scopes[0].path", "1-512"),
    ([{"path": 7}], "scopes[0].path", "path pattern"),
    ([{"class": "nightly"}], "scopes[0].class", "no rate-limit class 'nightly'"),
    ([{"class": ""}], "scopes[0].class", "name of a rate-limit class"),
])
def test_bad_scopes_are_refused_naming_the_field(value: Any, field: str, words: str) -> None:
    """A wrong grant is a 422 whose field names the grant (and its key) at fault."""
    with pytest.raises(Unprocessable) as caught:
        parse_scopes(value, class_names=NAMES)
    assert caught.value.status == 422
    assert caught.value.extra["field"] == field
    assert words in caught.value.detail


def test_scopes_read_back_as_they_were_written() -> None:
    """The admin API shows grants in the shape they were given (methods sorted, once each)."""
    scopes = parse_scopes([READ_ONLY, {"methods": ["POST", "GET", "GET"], "path": "/a/**"},
                           {"class": "reports"}, READ_ONLY], class_names=NAMES)
    assert scopes.to_json() == [READ_ONLY, {"methods": ["GET", "POST"], "path": "/a/**"},
                                {"methods": ["*"], "class": "reports"}]
    assert parse_scopes(scopes.to_json(), class_names=NAMES) == scopes


@pytest.mark.parametrize(("text", "grant"), [
    ("read-only", READ_ONLY),
    ("/api/{workspace}/notes/**", {"path": "/api/{workspace}/notes/**"}),
    ("GET,HEAD /api/{workspace}/reports/**",
     {"path": "/api/{workspace}/reports/**", "methods": ["GET", "HEAD"]}),
    ("class:reports", {"class": "reports"}),
    ("PUT class:uploads", {"class": "uploads", "methods": ["PUT"]}),
])
def test_the_one_line_grant_syntax(text: str, grant: Any) -> None:
    """The CLI's and the page's one-line grants become the API's grants."""
    assert grant_from_text(text) == grant


def test_a_one_line_grant_of_three_words_is_refused() -> None:
    """More words than METHODS PATH is a 422 naming scopes."""
    with pytest.raises(Unprocessable, match="is not a grant"):
        grant_from_text("GET /a /b")
