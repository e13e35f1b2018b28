"""Path normalisation: one canonical spelling, or 400 when there is none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.policy.errors import BadRequest
from gateway.policy.paths import normalize_path

CANONICAL = [
    # (raw path, normalised path, why)
    ("/", "/", "the root"),
    ("/api/ws/invites", "/api/ws/invites", "a plain path is unchanged"),
    ("/api/ws/invites/", "/api/ws/invites/", "the trailing slash is kept for the upstream"),
    ("/API/Ws/Invites", "/API/Ws/Invites", "letter case is kept for the upstream"),
    ("//api//ws///invites", "/api/ws/invites", "duplicate slashes collapse"),
    ("/api/ws/invites//", "/api/ws/invites/", "a doubled trailing slash becomes one"),
    ("//", "/", "only slashes is the root"),
    ("/api/ws/./invites", "/api/ws/invites", "a '.' segment goes"),
    ("/api/ws/x/../invites", "/api/ws/invites", "a '..' segment removes the one before"),
    ("/api/ws/invites/.", "/api/ws/invites/", "a final '.' leaves a trailing slash (RFC 3986)"),
    ("/api/ws/invites/x/..", "/api/ws/invites/", "a final '..' leaves a trailing slash"),
    ("/a/..", "/", "climbing back to the root is fine"),
    ("/api/ws/%2e/invites", "/api/ws/invites", "an encoded '.' segment goes"),
    ("/api/ws/x/%2E%2e/invites", "/api/ws/invites", "an encoded '..' segment is resolved"),
    ("/api/ws/x/.%2E/invites", "/api/ws/invites", "a half-encoded '..' segment is resolved"),
    ("/api/ws/invit%65s", "/api/ws/invites", "an escaped unreserved letter is decoded"),
    ("/%61%70%69/ws/invites", "/api/ws/invites", "a fully escaped segment is decoded"),
    ("/a/%41%7a%30%2D%2e%5F%7E", "/a/Az0-._~", "every unreserved class is decoded"),
    ("/a/%3a%40%2b", "/a/%3A%40%2B", "escapes of reserved characters stay, hex upper-cased"),
    ("/a/%25", "/a/%25", "an escaped percent stays escaped"),
    ("/a/%2541", "/a/%2541", "decoding happens once: '%2541' is not '%41' nor 'A'"),
    ("/a/%c3%a9", "/a/%C3%A9", "escaped UTF-8 stays escaped with upper-case hex"),
    ("/caf\u00e9", "/caf%C3%A9", "a raw non-ASCII character is percent-encoded as UTF-8"),
    ("/a b", "/a%20b", "a raw space is percent-encoded"),
    ("/a/{x}|y", "/a/%7Bx%7D%7Cy", "raw characters outside pchar are percent-encoded"),
    ("/a/b;v=1", "/a/b;v=1", "a path parameter after a real segment name is kept"),
    ("/a/b:c@d!$&'()*+,=", "/a/b:c@d!$&'()*+,=", "raw sub-delims, ':' and '@' are kept"),
    ("/.well-known/x", "/.well-known/x", "a segment that only starts with a dot is kept"),
    ("/a/...", "/a/...", "three dots is an ordinary segment"),
]


@pytest.mark.parametrize(("raw", "expected", "why"), CANONICAL, ids=[c[2] for c in CANONICAL])
def test_canonical_form(raw: str, expected: str, why: str) -> None:
    """Each raw path has the one canonical form that both the rules and the upstream see."""
    assert normalize_path(raw) == expected


@pytest.mark.parametrize("raw", [c[0] for c in CANONICAL])
def test_normalising_twice_changes_nothing(raw: str) -> None:
    """The canonical form is a fixed point, so re-normalising downstream is harmless."""
    once = normalize_path(raw)
    assert normalize_path(once) == once


AMBIGUOUS = [
    # (raw path, words the 400 detail contains, why)
    ("", "start with '/'", "an empty path"),
    ("api/ws", "start with '/'", "a relative path"),
    ("*", "start with '/'", "the asterisk form"),
    ("http://h/api", "start with '/'", "the absolute form, which the caller must reduce"),
    ("/api/ws%2Finvites", "encoded '/'", "an encoded slash inside a segment"),
    ("/api/ws%2finvites", "encoded '/'", "a lower-case encoded slash"),
    ("/api/ws%5Cinvites", "encoded '/' or '\\'", "an encoded backslash"),
    ("/api/ws\\invites", "backslash", "a raw backslash"),
    ("/api/ws/invites%00", "NUL", "an encoded NUL"),
    ("/api/ws/invites\x00", "NUL", "a raw NUL"),
    ("/api/ws/invites%0a", "control character", "an encoded line feed"),
    ("/api/ws/invites\r", "control character", "a raw carriage return"),
    ("/api/ws/invites%7F", "control character", "an encoded DEL"),
    ("/api/ws/invites%C2%85", "control character", "an encoded C1 control (NEL)"),
    ("/a/%C3", "UTF-8", "a truncated UTF-8 sequence"),
    ("/a/%FF", "UTF-8", "a byte that is never UTF-8"),
    ("/a/%C0%AF", "UTF-8", "an overlong '/' encoding"),
    ("/a/%ED%A0%80", "UTF-8", "an encoded surrogate"),
    ("/a/\udcff", "UTF-8", "a raw undecodable byte carried as a surrogate"),
    ("/a/%G1", "malformed", "a non-hex escape"),
    ("/a/%4", "malformed", "a short escape"),
    ("/a/%", "malformed", "a trailing percent"),
    ("/a/%%41", "malformed", "a doubled percent"),
    ("/..", "above the root", "'..' at the root"),
    ("/a/../..", "above the root", "more '..' than segments"),
    ("/%2e%2e/etc", "above the root", "encoded '..' at the root"),
    ("/api/ws/x/..;/invites", "hidden behind ';'", "Tomcat's '..;' climbs where others see a name"),
    ("/api/ws/.;x/invites", "hidden behind ';'", "a '.' segment with parameters"),
    ("/api/ws/%2e%2e;/invites", "hidden behind ';'", "an encoded '..' with parameters"),
    ("/api/ws/invites/;jsessionid=1", "hidden behind ';'", "a segment of parameters only"),
    ("/api/ws?x", "'?' or '#'", "a query left on the path"),
    ("/api/ws#x", "'?' or '#'", "a fragment"),
]


@pytest.mark.parametrize(("raw", "words", "why"), AMBIGUOUS, ids=[c[2] for c in AMBIGUOUS])
def test_ambiguous_path_is_400(raw: str, words: str, why: str) -> None:
    """A path without one unambiguous reading is refused with 400, saying why."""
    with pytest.raises(BadRequest) as caught:
        normalize_path(raw)
    assert caught.value.status == 400
    assert words in caught.value.detail


def test_refused_path_is_not_echoed() -> None:
    """The 400 detail does not echo the client's path (no reflected content in errors)."""
    with pytest.raises(BadRequest) as caught:
        normalize_path("/<script>%2F")
    assert "script" not in caught.value.detail


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40).map(lambda s: "/" + s))
def test_any_path_is_refused_or_canonical(raw: str) -> None:
    """Any input is either a 400 or a plain-ASCII fixed point with no empty or dot segments."""
    try:
        result = normalize_path(raw)
    except BadRequest:
        return
    assert result.isascii() and result.startswith("/")
    assert normalize_path(result) == result
    if result != "/":
        assert all(seg not in ("", ".", "..") for seg in result.strip("/").split("/"))


@given(st.lists(st.sampled_from(["a", "%2e", "%2E", ".", "..", "%41", "%7e", "", "b;c", "%C3%A9"]),
                max_size=8))
def test_escape_heavy_paths_are_refused_or_canonical(segments: list[str]) -> None:
    """Paths built from tricky segments are a 400 or a fixed point of normalisation."""
    raw = "/" + "/".join(segments)
    try:
        result = normalize_path(raw)
    except BadRequest:
        return
    assert normalize_path(result) == result
    assert "%2E" not in result and "%41" not in result and "%7E" not in result
