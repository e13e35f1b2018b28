"""Path patterns: literal segments, ``{param}`` for one segment, ``**`` for the rest.

A pattern matches a normalised path (see :mod:`gateway.policy.paths`) the way an
ordinary web framework would route it, so a request routed to a handler cannot
dodge a pattern written for that handler:

* empty segments are ignored, so a trailing slash (and a stray "//") matches
  the same as without;
* literal segments are compared with the path segment *percent-decoded*, as a
  framework decodes the path before routing ("a%3Ab" meets a literal "a:b");
* literal segments ignore letter case unless the pattern is case-sensitive;
* literal segments ignore ";params" (Tomcat and Spring route "/invites;x" to
  "/invites"; refusing it where another framework would 404 costs nothing);
* the last literal segment, when it is the path's last segment, also matches
  with any format suffix: "invites.json", but also "invites.x-y", "invites.~",
  "invites.%E2%82%AC" or "invites.a.b". Rails' optional "(.:format)" takes
  anything up to the next "." or "/" as the format, and older Spring MVC
  ("useSuffixPatternMatch") routes "/invites" as "/invites.*", dots included;
  so the rule is "the literal, a dot, then anything" (even nothing: IIS drops
  a trailing dot). Matching is on the decoded segment, so escapes cannot hide
  the dot or the suffix either.

Parameter values are returned as they appear in the normalised path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

from gateway.policy.errors import BadRequest
from gateway.policy.paths import normalize_path

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def split_path(path: str) -> tuple[str, ...]:
    """The non-empty segments of a normalised path, as patterns compare them."""
    return tuple(segment for segment in path.split("/") if segment)


def segment_key(segment: str, *, case_sensitive: bool = False) -> str:
    """What a literal pattern segment is compared with: decoded, params dropped, folded."""
    head = segment.split(";", 1)[0] if ";" in segment else segment
    key = unquote(head) if "%" in head else head
    return key if case_sensitive else key.casefold()


class PathPattern:
    """A compiled path pattern; ``match`` costs one split and a segment walk."""

    __slots__ = ("_fixed", "_segments", "_suffixed", "_tail", "case_sensitive", "params", "pattern")

    def __init__(self, pattern: str, *, case_sensitive: bool = False) -> None:
        self.pattern = pattern
        self.case_sensitive = case_sensitive
        # Each compiled segment is (literal key, None) or (None, param name).
        segments: list[tuple[str | None, str | None]] = []
        params: list[str] = []
        tail = False
        for raw, is_last in _pattern_segments(pattern):
            if raw == "**":
                if not is_last:
                    raise ValueError(f"pattern {pattern!r}: '**' may only be the last segment")
                tail = True
            elif raw.startswith("{") and raw.endswith("}"):
                name = raw[1:-1]
                if not name:
                    raise ValueError(f"pattern {pattern!r}: empty parameter '{{}}'")
                if not _PARAM_NAME.fullmatch(name):
                    raise ValueError(f"pattern {pattern!r}: bad parameter name {name!r}")
                if name in params:
                    raise ValueError(f"pattern {pattern!r}: duplicate parameter {name!r}")
                params.append(name)
                segments.append((None, name))
            else:
                segments.append((_literal_key(pattern, raw, case_sensitive), None))
        self.params: tuple[str, ...] = tuple(params)
        self._segments = tuple(segments)
        self._fixed = len(segments)
        self._tail = tail
        # What the last literal may start with when it carries a format suffix.
        last = segments[-1][0] if segments else None
        self._suffixed = last + "." if last is not None else None

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters if the normalised ``path`` matches, else None."""
        return self.match_segments(split_path(path))

    def match_segments(self, segments: Sequence[str]) -> dict[str, str] | None:
        """Like ``match``, for a path already split with ``split_path``."""
        count = len(segments)
        if count < self._fixed or (count > self._fixed and not self._tail):
            return None
        params: dict[str, str] = {}
        # A suffix is allowed only on the path's last segment (with "**", only
        # when the tail is empty): "invites.json/x" routes nowhere near invites.
        last = self._fixed - 1 if count == self._fixed else -1
        suffixed = self._suffixed
        for index, ((literal, name), segment) in enumerate(zip(self._segments, segments)):
            if name is not None:
                params[name] = segment
                continue
            key = segment_key(segment, case_sensitive=self.case_sensitive)
            if key != literal and not (
                index == last and suffixed is not None and key.startswith(suffixed)
            ):
                return None
        return params

    def __repr__(self) -> str:
        flag = ", case_sensitive=True" if self.case_sensitive else ""
        return f"PathPattern({self.pattern!r}{flag})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PathPattern):
            return NotImplemented
        return (self.pattern, self.case_sensitive) == (other.pattern, other.case_sensitive)

    def __hash__(self) -> int:
        return hash((self.pattern, self.case_sensitive))


def _pattern_segments(pattern: str) -> list[tuple[str, bool]]:
    """The raw segments of a pattern, each with whether it is the last one."""
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError(f"pattern {pattern!r}: must start with '/'")
    # "/a/" is the same pattern as "/a": trailing slashes never matter.
    body = pattern[1:].removesuffix("/")
    if not body:
        return []
    raw_segments = body.split("/")
    if "" in raw_segments:
        raise ValueError(f"pattern {pattern!r}: empty segment ('//')")
    last = len(raw_segments) - 1
    return [(raw, i == last) for i, raw in enumerate(raw_segments)]


def _literal_key(pattern: str, raw: str, case_sensitive: bool) -> str:
    """The comparison key of a literal segment, refusing one no path could match."""
    if "{" in raw or "}" in raw:
        raise ValueError(f"pattern {pattern!r}: stray brace in segment {raw!r}")
    if "*" in raw:
        raise ValueError(f"pattern {pattern!r}: '*' only as a whole last segment '**'")
    if ";" in raw:
        raise ValueError(f"pattern {pattern!r}: ';' in segment {raw!r} can never match")
    if unquote(raw) in (".", ".."):
        raise ValueError(f"pattern {pattern!r}: dot segment {raw!r} can never match")
    try:
        normalised = normalize_path("/" + raw)
    except BadRequest as exc:
        raise ValueError(f"pattern {pattern!r}: segment {raw!r}: {exc.detail}") from None
    return segment_key(normalised[1:], case_sensitive=case_sensitive)
