"""Path patterns: literal segments, {param}, a final **, routed like a web framework."""

from __future__ import annotations

import pytest

from gateway.policy.paths import normalize_path
from gateway.policy.patterns import PathPattern, segment_key, split_path

# Every spelling of a format suffix that Rails' "(.:format)" ([^./?]+ after the
# dot) or older Spring MVC ("/invites.*") routes to the handler of "/invites".
FORMAT_SUFFIXES = [
    ".json", ".x-y", ".x_y", ".~", ".$", ".+", ".*", ".(x)", ".%E2%82%AC", ".%2d", ".%2D",
    ".JSON", "%2Ejson", ".%7E", ".a%20b", ".%3F", ".", "..", ".txt.json", ".json;v=1",
]

MATCHES = [
    # (pattern, path as the client sent it, params, why)
    *(("/api/{ws}/invites", f"/api/acme/invites{suffix}", {"ws": "acme"},
       f"format suffix {suffix!r} on the last literal") for suffix in FORMAT_SUFFIXES),
    ("/api/{ws}/reports/{r}/runs/{run}/clone", "/api/acme/reports/r1/runs/9/clone.x-y",
     {"ws": "acme", "r": "r1", "run": "9"}, "a format suffix on the clone literal"),
    ("/api/{ws}/exports/**", "/api/acme/exports.csv", {"ws": "acme"},
     "a format suffix on the last literal before an empty **"),
    ("/api/{ws}/invites", "/api/acme/Invites.X_Y/", {"ws": "acme"},
     "a format suffix, any case, trailing slash"),
    ("/", "/", {}, "the root matches the root"),
    ("/api/{ws}/invites", "/api/acme/invites", {"ws": "acme"}, "a param takes one segment"),
    ("/api/{ws}/invites", "/api/acme/invites/", {"ws": "acme"}, "a trailing slash is ignored"),
    ("/api/{ws}/invites/", "/api/acme/invites", {"ws": "acme"}, "a pattern's trailing slash too"),
    ("/api/{ws}/invites", "/API/acme/INVITES", {"ws": "acme"}, "literals ignore case"),
    ("/api/{ws}/invites", "/api/ACME/invites", {"ws": "ACME"}, "param values keep their case"),
    ("/api/{ws}/invites", "//api/acme/./invites", {"ws": "acme"}, "slashes and dots go first"),
    ("/api/{ws}/invites", "/api/acme/x/../invites", {"ws": "acme"}, "'..' is resolved first"),
    ("/api/{ws}/invites", "/api/acme/invit%65s", {"ws": "acme"}, "escaped letters are decoded"),
    ("/api/{ws}/invites", "/api/acme/INVIT%45S/", {"ws": "acme"}, "all spellings at once"),
    ("/api/{ws}/invites", "/api/acme/invites;x=1", {"ws": "acme"}, "';params' do not hide it"),
    ("/api/{ws}/invites", "/api/ac%20me/invites", {"ws": "ac%20me"}, "values as in the path"),
    ("/a/b:c", "/a/b%3Ac", {}, "a literal meets the decoded form of a reserved escape"),
    ("/a/b%3Ac", "/a/b:c", {}, "an escaped literal in a pattern meets the raw form"),
    ("/caf\u00e9", "/caf%C3%A9", {}, "a non-ASCII literal meets its UTF-8 escapes"),
    ("/stra\u00dfe", "/STRASSE", {}, "case folding is full Unicode folding"),
    ("/api/{ws}/**", "/api/acme", {"ws": "acme"}, "** matches zero segments"),
    ("/api/{ws}/**", "/api/acme/", {"ws": "acme"}, "** matches zero segments, trailing slash"),
    ("/api/{ws}/**", "/api/acme/a/b/c", {"ws": "acme"}, "** matches many segments"),
    ("/**", "/", {}, "/** matches the root"),
    ("/**", "/anything/at/all", {}, "/** matches everything"),
    ("/{a}/{b}", "/x/y", {"a": "x", "b": "y"}, "several params"),
]


@pytest.mark.parametrize(("pattern", "raw", "params", "why"), MATCHES, ids=[m[3] for m in MATCHES])
def test_match(pattern: str, raw: str, params: dict[str, str], why: str) -> None:
    """Every spelling a framework would route to the pattern's handler matches it."""
    assert PathPattern(pattern).match(normalize_path(raw)) == params


MISSES = [
    # (pattern, path as the client sent it, case_sensitive, why)
    ("/api/{ws}/invites", "/api/acme/invites/x", False, "an extra segment"),
    ("/api/{ws}/invites", "/api/invites", False, "a missing segment: a param is never empty"),
    ("/api/{ws}/invites", "//api//invites", False, "collapsed slashes leave no empty param"),
    ("/api/{ws}/invites", "/api/acme/invitesx", False, "a longer literal"),
    ("/api/{ws}/invites", "/api/acme/invitesjson", False, "a longer name is another resource"),
    ("/api/{ws}/invites", "/api/acme/invites-json", False, "a suffix needs its dot"),
    ("/api/{ws}/invites", "/api/acme/invites.json/x", False, "a suffix only on the last segment"),
    ("/api/{ws}/invites", "/api.json/acme/invites", False, "a suffix only on the last literal"),
    ("/api/{ws}/exports/**", "/api/acme/exports.csv/x", False,
     "a suffix before a non-empty ** is another resource"),
    ("/api/{ws}/invites/{id}", "/api/acme/invites.json/5", False,
     "no suffix on a literal before a param"),
    ("/api/{ws}/invites", "/api/acme/invites%252Ejson", False, "a doubly-escaped dot is no dot"),
    ("/api/{ws}/invites", "/api/acme/INVITES.json", True, "a case-sensitive suffixed literal"),
    ("/api/{ws}/invites", "/api/acme/invites%3Bx", False, "an escaped ';' is no parameter"),
    ("/api/{ws}/invites", "/api/acme/invit%2565s", False, "decoding happens only once"),
    ("/api/{ws}/invites", "/api/acme/INVITES", True, "a case-sensitive pattern minds case"),
    ("/api/{ws}/**", "/api", False, "** does not make the param optional"),
    ("/", "/a", False, "the root matches only the root"),
    ("/a", "/", False, "a literal needs its segment"),
]


@pytest.mark.parametrize(
    ("pattern", "raw", "case_sensitive", "why"), MISSES, ids=[m[3] for m in MISSES]
)
def test_no_match(pattern: str, raw: str, case_sensitive: bool, why: str) -> None:
    """A path that routes to another handler does not match."""
    compiled = PathPattern(pattern, case_sensitive=case_sensitive)
    assert compiled.match(normalize_path(raw)) is None


def test_case_sensitive_pattern_matches_exact_case() -> None:
    """A case-sensitive pattern still matches the exact spelling, slashes and all."""
    compiled = PathPattern("/api/{ws}/Invites", case_sensitive=True)
    assert compiled.match(normalize_path("//api/acme/Invit%65s/")) == {"ws": "acme"}


def test_match_segments_agrees_with_match() -> None:
    """Matching pre-split segments gives the same answer as matching the path."""
    compiled = PathPattern("/api/{ws}/reports/**")
    path = normalize_path("/api/acme/Reports/r1/runs")
    assert compiled.match_segments(split_path(path)) == compiled.match(path) == {"ws": "acme"}


@pytest.mark.parametrize(
    ("segment", "case_sensitive", "key"),
    [
        ("Invites", False, "invites"),
        ("Invites", True, "Invites"),
        ("b%3Ac", False, "b:c"),
        ("invites;x=1", False, "invites"),
        ("caf%C3%A9", True, "caf\u00e9"),
    ],
)
def test_segment_key(segment: str, case_sensitive: bool, key: str) -> None:
    """A segment's comparison key is decoded, without ';params', folded unless case-sensitive."""
    assert segment_key(segment, case_sensitive=case_sensitive) == key


INVALID = [
    # (pattern, words the error contains, why)
    ("", "must start with '/'", "an empty pattern"),
    ("api/{ws}", "must start with '/'", "a relative pattern"),
    ("/api/**/x", "'**' may only be the last segment", "** in the middle"),
    ("/**/**", "'**' may only be the last segment", "two **"),
    ("/api/{}", "empty parameter", "an empty param"),
    ("/api/{1ws}", "bad parameter name", "a param name starting with a digit"),
    ("/api/{w-s}", "bad parameter name", "a param name with a dash"),
    ("/api/{ws}/{ws}", "duplicate parameter 'ws'", "a param named twice"),
    ("/api/{ws", "stray brace", "an unclosed brace"),
    ("/api/ws}", "stray brace", "a closing brace alone"),
    ("/api/x{ws}", "stray brace", "a param inside a literal"),
    ("/api/{a{b}", "bad parameter name", "a brace inside a param"),
    ("/api/*", "'*' only as a whole last segment", "a single *"),
    ("/api/a**", "'*' only as a whole last segment", "** glued to a literal"),
    ("/api//x", "empty segment", "an empty segment"),
    ("/api/./x", "dot segment", "a '.' literal"),
    ("/api/%2E%2E", "dot segment", "an escaped '..' literal"),
    ("/api/a;b", "';'", "a ';' literal, which a path's parameters would hide"),
    ("/api/a%2Fb", "encoded '/'", "an encoded slash"),
    ("/api/a\\b", "backslash", "a backslash"),
    ("/api/%ZZ", "malformed", "a malformed escape"),
]


@pytest.mark.parametrize(("pattern", "words", "why"), INVALID, ids=[c[2] for c in INVALID])
def test_invalid_pattern(pattern: str, words: str, why: str) -> None:
    """An invalid pattern is a ValueError quoting the pattern and saying what is wrong."""
    with pytest.raises(ValueError, match="pattern") as caught:
        PathPattern(pattern)
    assert words in str(caught.value)
    assert repr(pattern) in str(caught.value)


def test_params_are_listed_in_order() -> None:
    """A compiled pattern lists its parameter names in order."""
    assert PathPattern("/api/{workspace}/reports/{report}/**").params == ("workspace", "report")


def test_patterns_compare_by_text_and_case_setting() -> None:
    """Two patterns are equal when their text and case setting are."""
    assert PathPattern("/a/{b}") == PathPattern("/a/{b}")
    assert PathPattern("/a/{b}") != PathPattern("/a/{b}", case_sensitive=True)
    assert len({PathPattern("/a"), PathPattern("/a")}) == 1
