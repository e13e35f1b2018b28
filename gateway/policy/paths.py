"""One canonical form of a request path, shared by the deny rules and the upstream.

The proxy normalises the raw path once, matches its rules against the result and
forwards that same result. If the rules saw one spelling and the upstream another,
a client could pick a spelling the rules miss but the upstream routes to the
denied handler; with one string for both, that gap does not exist.

Anything that could be read two ways (an encoded slash, a NUL, bytes that are not
UTF-8, a climb above the root) is refused with 400 instead of guessed at.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from gateway.policy.errors import BadRequest

# RFC 3986 2.3: escapes of these may be decoded without changing the URI's meaning.
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# A segment made only of RFC 3986 pchar characters and no escapes is already
# canonical (apart from dot segments, checked separately): the common case, so
# it skips the slower escape handling.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@]*")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Raw characters that are neither pchar nor "%": percent-encoded on the way
# through, so the forwarded path is plain ASCII and has one spelling.
_NOT_PCHAR = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@%]")
# C0 controls, DEL and C1 controls, raw or decoded.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def normalize_path(raw_path: str) -> str:
    """The canonical form of a raw, still percent-encoded request path (no query)."""
    if not raw_path.startswith("/"):
        raise BadRequest("the request path must start with '/'")
    parts = raw_path.split("/")
    out: list[str] = []
    trailing_slash = False
    for index, raw_segment in enumerate(parts[1:], start=1):
        last = index == len(parts) - 1
        segment = _canonical_segment(raw_segment)
        # Empty segments come from "//": collapsed, as most frameworks route
        # "/a//b" like "/a/b". The final empty segment is the trailing slash.
        if segment in ("", "."):
            trailing_slash = last
        elif segment == "..":
            if not out:
                raise BadRequest("the request path climbs above the root with '..'")
            out.pop()
            trailing_slash = last
        else:
            out.append(segment)
            trailing_slash = False
    if not out:
        return "/"
    # The trailing slash is kept in what is forwarded (it may mean something
    # upstream); the matcher treats "/a/" like "/a", so it cannot dodge a rule.
    return "/" + "/".join(out) + ("/" if trailing_slash else "")


def _canonical_segment(segment: str) -> str:
    """One path segment with unreserved escapes decoded and the rest upper-cased."""
    if not _PLAIN_SEGMENT.fullmatch(segment):
        segment = _escaped_segment(segment)
    _refuse_hidden_dot_segment(segment)
    return segment


def _escaped_segment(segment: str) -> str:
    """The slow path for a segment with escapes or characters outside pchar."""
    if "\\" in segment:
        # Some servers (IIS, and frameworks on Windows) treat "\" as "/": the
        # rules could not know which segments the upstream sees.
        raise BadRequest("the request path contains a backslash")
    if "?" in segment or "#" in segment:
        # The query was split off before; a "?" or "#" left here means the
        # caller or the client produced something no upstream reads alike.
        raise BadRequest("the request path contains '?' or '#'")
    if _BAD_ESCAPE.search(segment):
        raise BadRequest("the request path has a malformed percent-escape")
    try:
        decoded = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeError:
        # Covers escapes that are not UTF-8 (including overlong forms such as
        # %C0%AF, a classic "/" smuggle) and raw surrogates from undecodable bytes.
        raise BadRequest("the request path is not valid UTF-8 once decoded") from None
    if "/" in decoded or "\\" in decoded:
        # An encoded slash or backslash: one upstream decodes it and routes on
        # more segments, another does not; no single reading is safe.
        raise BadRequest("the request path has an encoded '/' or '\\' inside a segment")
    if "\x00" in decoded:
        raise BadRequest("the request path contains a NUL")
    if _CONTROL.search(decoded):
        raise BadRequest("the request path contains a control character")
    segment = _NOT_PCHAR.sub(_encode_char, segment)
    return _ESCAPE.sub(_canonical_escape, segment)


def _encode_char(match: re.Match[str]) -> str:
    """A raw character outside pchar as upper-case percent-escapes of its UTF-8."""
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def _canonical_escape(match: re.Match[str]) -> str:
    """An unreserved character decoded; any other escape with upper-case hex."""
    char = chr(int(match.group(1), 16))
    return char if char in UNRESERVED else "%" + match.group(1).upper()


def _refuse_hidden_dot_segment(segment: str) -> None:
    """Refuse a segment that is a dot segment, or empty, once its ';' parameters go."""
    # Tomcat and servlet containers drop ";params" from each segment before
    # resolving dot segments, so "/a/..;/b" reaches "/b" there while every
    # other reader sees four segments. The same stripping turns ";x" into an
    # empty segment. Neither has one reading, so neither is forwarded.
    if ";" in segment and segment.split(";", 1)[0] in ("", ".", ".."):
        raise BadRequest("the request path has a dot segment hidden behind ';' parameters")
