"""The upstream wire format as data: request heads and response framing (no sockets)."""

from __future__ import annotations

import pytest

from gateway.proxy.bodies import LAST_CHUNK, chunk_size_line
from gateway.proxy.wire import Body, Framing, FramingError, request_head, response_framing

H = [("X-A", "1"), ("X-Tokengate-User", "ada")]


@pytest.mark.parametrize(("method", "length", "framing_line"), [
    ("GET", 0, b""),                                   # no body, nothing said
    ("POST", 0, b"Content-Length: 0\r\n"),             # an empty POST says so
    ("PUT", 5, b"Content-Length: 5\r\n"),
    ("POST", None, b"Transfer-Encoding: chunked\r\n"),  # unknown length: re-chunked
    ("DELETE", 3, b"Content-Length: 3\r\n"),
])
def test_request_head_is_one_buffer_with_our_framing(
    method: str, length: int | None, framing_line: bytes
) -> None:
    """Request line, Host, the filtered headers, the body's framing, the blank line."""
    head = request_head(method, "/a/b?x=1", "up:3000", H, length)
    assert head == (f"{method} /a/b?x=1 HTTP/1.1\r\nHost: up:3000\r\nX-A: 1\r\n"
                    "X-Tokengate-User: ada\r\n").encode() + framing_line + b"\r\n"


def test_request_head_keeps_utf8_values() -> None:
    """Header values leave as the UTF-8 they arrived in."""
    assert "é".encode() in request_head("GET", "/", "h", [("X-Name", "é")], 0)


@pytest.mark.parametrize(("target", "headers"), [
    ("/a b", []),
    ("/a\r\nX-Evil: 1", []),
    ("", []),
    ("/", [("X-A", "1\r\nX-Evil: 1")]),
    ("/", [("X-A", "1\nX-Evil: 1")]),
    ("/", [("X-A\r", "1")]),
])
def test_request_head_refuses_line_breaks_and_bad_targets(
    target: str, headers: list[tuple[str, str]]
) -> None:
    """A target or header that would start a line of its own is refused, not sent."""
    with pytest.raises(ValueError):
        request_head("GET", target, "h", headers, 0)


V11 = (1, 1)
CL = b"Content-Length"
TE = b"Transfer-Encoding"


@pytest.mark.parametrize(("status", "method", "version", "headers", "framing"), [
    (200, "GET", V11, [(CL, b"5")], Framing(Body.LENGTH, 5, True)),
    (200, "GET", V11, [(b"content-length", b"5"), (b"CONTENT-LENGTH", b"5")],
     Framing(Body.LENGTH, 5, True)),                                  # repeated, agreeing
    (200, "GET", V11, [(CL, b"5, 5")], Framing(Body.LENGTH, 5, True)),
    (200, "GET", V11, [(CL, b"0")], Framing(Body.NONE, 0, True)),
    (200, "GET", V11, [(TE, b"chunked")], Framing(Body.CHUNKED, 0, True)),
    (200, "GET", V11, [(TE, b"Chunked")], Framing(Body.CHUNKED, 0, True)),
    (200, "GET", V11, [], Framing(Body.CLOSE, 0, False)),            # close-delimited
    (200, "GET", V11, [(CL, b"5"), (b"Connection", b"close")], Framing(Body.LENGTH, 5, False)),
    (200, "GET", (1, 0), [(CL, b"5")], Framing(Body.LENGTH, 5, False)),
    (200, "GET", (1, 0), [(CL, b"5"), (b"Connection", b"Keep-Alive")],
     Framing(Body.LENGTH, 5, True)),
    (200, "HEAD", V11, [(CL, b"1234")], Framing(Body.NONE, 0, True)),
    (200, "HEAD", V11, [(TE, b"chunked")], Framing(Body.NONE, 0, True)),
    (204, "GET", V11, [], Framing(Body.NONE, 0, True)),
    (304, "GET", V11, [(CL, b"99")], Framing(Body.NONE, 0, True)),
    (103, "GET", V11, [], Framing(Body.NONE, 0, True)),
])
def test_response_framing(status: int, method: str, version: tuple[int, int],
                          headers: list[tuple[bytes, bytes]], framing: Framing) -> None:
    """How an answer's body ends, and whether its connection may be used again."""
    assert response_framing(status, method, version, headers) == framing


@pytest.mark.parametrize(("status", "method", "headers"), [
    (200, "GET", [(CL, b"5"), (TE, b"chunked")]),
    (204, "GET", [(CL, b"5"), (TE, b"chunked")]),     # refused even where no body follows
    (200, "GET", [(CL, b"5"), (CL, b"6")]),
    (200, "GET", [(CL, b"5, 6")]),
    (200, "GET", [(CL, b"5x")]),
    (200, "GET", [(CL, b"-1")]),
    (200, "GET", [(CL, b"")]),
    (200, "GET", [(CL, b"1" * 19)]),
    (304, "GET", [(CL, b"abc")]),
    (200, "GET", [(TE, b"gzip")]),
    (200, "GET", [(TE, b"chunked, gzip")]),
    (200, "GET", [(TE, b"gzip, chunked")]),            # a coding the gateway cannot undo
    (200, "GET", [(TE, b"chunked"), (TE, b"chunked")]),
    (101, "GET", [(b"Upgrade", b"websocket")]),
    (1000, "GET", []),
    (99, "GET", []),
])
def test_ambiguous_framing_is_refused(status: int, method: str,
                                      headers: list[tuple[bytes, bytes]]) -> None:
    """Two lengths, a length and a coding, a bad length, another coding: FramingError."""
    with pytest.raises(FramingError):
        response_framing(status, method, (1, 1), headers)


@pytest.mark.parametrize(("size", "line"), [(1, b"1\r\n"), (255, b"ff\r\n"),
                                            (65536, b"10000\r\n")])
def test_chunk_size_lines_are_hex(size: int, line: bytes) -> None:
    """A re-chunked body's size lines are lower-case hex; the last chunk is empty."""
    assert chunk_size_line(size) == line
    assert LAST_CHUNK == b"0\r\n\r\n"
