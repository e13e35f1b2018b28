"""HTTP/1.1 on the upstream side, as data: the request head's bytes and the response's framing.

Pure functions (no sockets, no event loop) so every framing case is a table
test. The lean client (``upstream.py``) writes what :func:`request_head`
builds in one write, and asks :func:`response_framing` how the answer's body
ends before it relays a byte of it. Framing is decided strictly: an answer
whose length is ambiguous (two lengths, a length and a transfer coding, a
coding tokengate cannot undo) is refused, because relaying it would let the
upstream and the client disagree on where the message ends (response
splitting, a poisoned keep-alive connection).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

# Methods whose request a client may repeat without changing anything beyond
# the first time (RFC 9110 section 9.2.2): only these are sent again when a
# pooled connection turns out to have been closed before any answer.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class FramingError(Exception):
    """The upstream's answer cannot be relayed safely: 502, and the connection is dropped."""


class Body(enum.Enum):
    """How a message body is delimited on the wire."""

    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    CLOSE = "close"  # until the upstream closes the connection


@dataclass(frozen=True, slots=True)
class Framing:
    """How the answer's body ends, and whether its connection may carry another request."""

    body: Body
    length: int = 0
    keep_alive: bool = False


def _target_ok(target: str) -> bool:
    return bool(target) and not any(c in target for c in " \r\n\t")


def request_head(method: str, target: str, host: str,
                 headers: Iterable[tuple[str, str]], length: int | None) -> bytes:
    """The request line and headers, ending in the blank line, as one buffer.

    ``length`` is the body's Content-Length, ``None`` for a body of unknown
    length (sent chunked) and 0 for none. ``headers`` must already be
    filtered: hop-by-hop, framing and ``Host`` headers are the client's and
    never passed on (``gateway.policy.headers``); these are ours.
    """
    if not _target_ok(target):
        raise ValueError(f"bad request target {target[:64]!r}")
    parts = [method, " ", target, " HTTP/1.1\r\nHost: ", host, "\r\n"]
    lines = 3  # the request line, Host, the blank line
    for name, value in headers:
        parts += (name, ": ", value, "\r\n")
        lines += 1
    if length is None:
        parts.append("Transfer-Encoding: chunked\r\n")
        lines += 1
    elif length or method in ("POST", "PUT", "PATCH"):
        # A POST without a body says so, as clients do (some servers insist).
        parts += ("Content-Length: ", str(length), "\r\n")
        lines += 1
    parts.append("\r\n")
    text = "".join(parts)
    # One pass instead of a check per value: a line break inside any name or
    # value would start a header (or a request) of the sender's choosing.
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("a line break inside a request header")
    # Header values came in as UTF-8 (aiohttp decodes them so): they go out so.
    return text.encode("utf-8", "surrogateescape")


def no_body(status: int, method: str) -> bool:
    """True when an answer has no body whatever its headers say (RFC 9112 section 6.3)."""
    return method == "HEAD" or status < 200 or status in (204, 304)


def _content_length(values: list[bytes]) -> int:
    found: set[int] = set()
    for value in values:
        for item in value.split(b","):
            item = item.strip(b" \t")
            if not item.isdigit() or len(item) > 18:
                raise FramingError(f"bad Content-Length {value[:32]!r}")
            found.add(int(item))
    if len(found) != 1:
        raise FramingError("several differing Content-Length values")
    return found.pop()


def _tokens(values: list[bytes]) -> list[bytes]:
    return [t.strip(b" \t").lower() for v in values for t in v.split(b",") if t.strip(b" \t")]


def response_framing(status: int, method: str, version: tuple[int, int],
                     headers: Iterable[tuple[bytes, bytes]]) -> Framing:
    """How the body of an answer to ``method`` ends; raises FramingError when it is ambiguous.

    Only ``chunked`` alone is accepted as a transfer coding: another coding
    would have to be undone before the body could be relayed without it.
    """
    lengths: list[bytes] = []
    codings: list[bytes] = []
    connection: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            lengths.append(value)
        elif lower == b"transfer-encoding":
            codings.append(value)
        elif lower == b"connection":
            connection.append(value)
    tokens = _tokens(connection)
    persistent = (b"close" not in tokens if version >= (1, 1)
                  else b"keep-alive" in tokens and version == (1, 0))
    if status == 101 or not 100 <= status <= 999:
        raise FramingError(f"unexpected status {status}")
    if lengths and codings:
        raise FramingError("both Content-Length and Transfer-Encoding")
    if no_body(status, method):
        # The headers may describe the body a GET would have had; there is none.
        if lengths:
            _content_length(lengths)  # still refused when malformed
        return Framing(Body.NONE, 0, persistent)
    if codings:
        if _tokens(codings) != [b"chunked"]:
            raise FramingError(f"unsupported Transfer-Encoding {b', '.join(codings)[:64]!r}")
        return Framing(Body.CHUNKED, 0, persistent)
    if lengths:
        n = _content_length(lengths)
        return Framing(Body.LENGTH if n else Body.NONE, n, persistent)
    return Framing(Body.CLOSE, 0, False)
