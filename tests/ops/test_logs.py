"""gateway.logs: JSON and text lines, the access line, and the redaction safety net."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.logs import (
    ACCESS_FIELDS,
    REDACTED,
    SECRET_PREFIXES,
    configure_logging,
    log_access,
    mask_text,
    normalise_path,
)
from gateway.policy import credentials
from gateway.policy.model import TokenType

SECRET = credentials.new_secret()
BEARER = credentials.new_bearer_token()
PUBLIC_TOKEN = credentials.new_token(TokenType.WORKSPACE)
BASIC = "Basic dGd3X0FiQ2RFZkdoSWpLbE1uT3A6dGdzX3NlY3JldA=="

ACCESS = {
    "request_id": "0f8c1e2a",
    "method": "GET",
    "path": "/api/acme/reports?page=2",
    "status": 200,
    "duration_ms": 3.25,
    "outcome": "allowed",
    "token_type": "workspace",
    "token": PUBLIC_TOKEN,
    "user": "alice",
    "route_class": "default",
    "upstream_status": 200,
    "client": "10.1.2.3",
}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Logging configured as JSON into a buffer, restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_secret_prefixes_match_the_credential_formats() -> None:
    """The redaction prefixes are exactly the secret and bearer-token prefixes the gateway issues."""
    assert set(SECRET_PREFIXES) == {credentials.SECRET_PREFIX, credentials.TOKEN_PREFIXES[TokenType.TRUSTED]}


def test_application_log_is_one_json_object_per_line(captured: io.StringIO) -> None:
    """An application record becomes one JSON object with time, level, logger, message and extras."""
    log = logging.getLogger("tokengate.test")
    log.info("store reconnected after %d attempts", 3, extra={"store": "redis", "attempts": 3})
    log.warning("multi\nline message")
    first, second = lines(captured)
    assert first["level"] == "info"
    assert first["logger"] == "tokengate.test"
    assert first["message"] == "store reconnected after 3 attempts"
    assert first["store"] == "redis" and first["attempts"] == 3
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["message"] == "multi\nline message"


def test_exceptions_are_logged_inside_the_json_line(captured: io.StringIO) -> None:
    """A logged exception stays in the same JSON line, under 'exc'."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("tokengate.test").exception("request failed")
    (line,) = lines(captured)
    assert "RuntimeError: boom" in line["exc"]


def test_access_line_has_every_field(captured: io.StringIO) -> None:
    """log_access writes one JSON line with all access fields, the path without its query."""
    log_access(ACCESS)
    (line,) = lines(captured)
    assert set(ACCESS_FIELDS) <= set(line)
    assert line["logger"] == "tokengate.access"
    assert line["path"] == "/api/acme/reports"
    assert line["status"] == 200 and line["duration_ms"] == 3.25
    assert line["token"] == ACCESS["token"]  # the public id is fine to log
    assert next(iter(line)) == "time"


def test_access_line_fills_missing_fields_with_null(captured: io.StringIO) -> None:
    """An unauthenticated request's access line still has every key, null where unknown."""
    log_access({"request_id": "r", "method": "GET", "path": "/", "status": 401,
                "duration_ms": 0.2, "outcome": "unauthenticated", "token_type": "none"})
    (line,) = lines(captured)
    assert set(ACCESS_FIELDS) <= set(line)
    assert line["user"] is None and line["upstream_status"] is None


def test_access_log_can_be_turned_off_and_is_independent_of_level() -> None:
    """access=False silences access lines; a 'warning' app level still keeps them."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        stream = io.StringIO()
        configure_logging("warning", "json", stream)
        logging.getLogger("tokengate.test").info("filtered out")
        log_access(ACCESS)
        assert len(lines(stream)) == 1
        stream = io.StringIO()
        configure_logging("info", "json", stream, access=False)
        log_access(ACCESS)
        assert stream.getvalue() == ""
    finally:
        for handler in list(root.handlers):
            if handler not in saved[1]:
                root.removeHandler(handler)
        root.setLevel(saved[0])
        logging.getLogger("tokengate.access").setLevel(logging.NOTSET)


def test_filtered_records_are_not_formatted(captured: io.StringIO) -> None:
    """A record below the level never has its arguments formatted (logging stays cheap)."""

    class Explodes:
        def __str__(self) -> str:
            raise AssertionError("formatted a filtered record")

    logging.getLogger("tokengate.test").debug("value %s", Explodes())
    assert captured.getvalue() == ""


def test_secrets_in_messages_and_arguments_are_masked(captured: io.StringIO) -> None:
    """Secrets, bearer tokens and Authorization values in a message never reach the output."""
    log = logging.getLogger("tokengate.test")
    log.info("got secret %s", SECRET)
    log.info("bearer %s and header Authorization: %s", BEARER, BASIC)
    log.info('payload {"secret_key": "sk-live-123", "password": "hunter2"}')
    log.info("header Authorization: Bearer %s", "opaque.Token-Value_42")
    out = captured.getvalue()
    for leaked in (SECRET, BEARER, BASIC.split()[1], "sk-live-123", "hunter2", "opaque.Token-Value_42"):
        assert leaked not in out
    assert out.count(REDACTED) >= 6
    assert "tgs_" + REDACTED in out  # the kind of credential stays visible


def test_sensitive_extra_fields_are_masked(captured: io.StringIO) -> None:
    """Extra fields named like secret, password, authorization, secret_key or bearer are masked whole."""
    logging.getLogger("tokengate.test").info(
        "trusted auth request",
        extra={
            "secret_key": "anything-at-all",
            "password": "pw",
            "authorization": BASIC,
            "bearer": "x",
            "headers": {"Authorization": BASIC, "Accept": "application/json"},
            "client_secret": "cs",
            "username": "alice",
        },
    )
    (line,) = lines(captured)
    for key in ("secret_key", "password", "authorization", "bearer", "client_secret"):
        assert line[key] == REDACTED, key
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert line["username"] == "alice"


def test_secrets_in_access_fields_and_tracebacks_are_masked(captured: io.StringIO) -> None:
    """A secret that slipped into an access field or an exception message is masked too."""
    log_access({**ACCESS, "path": f"/api/{SECRET}/x", "user": BEARER})
    try:
        raise ValueError(f"bad credential {SECRET}")
    except ValueError:
        logging.getLogger("tokengate.test").exception("failed")
    out = captured.getvalue()
    assert SECRET not in out and BEARER not in out
    access_line, error_line = lines(captured)
    assert access_line["path"] == f"/api/tgs_{REDACTED}/x"
    assert f"tgs_{REDACTED}" in error_line["exc"]


@pytest.mark.parametrize(
    "text",
    ["basic auth failed", "Bearer tokens minted: 3", "the secret is shown once", f"token {PUBLIC_TOKEN}"],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    """English words and public token ids are not mistaken for credentials."""
    assert mask_text(text) == text


def test_text_format_is_one_readable_line(captured: io.StringIO) -> None:
    """The text format writes 'time LEVEL logger: message key=value' and a compact access line."""
    stream = io.StringIO()
    configure_logging("info", "text", stream)
    logging.getLogger("tokengate.test").info("listening on %s", "0.0.0.0:8080", extra={"workers": 2})
    log_access({**ACCESS, "user": "bob smith"})
    logging.getLogger("tokengate.test").info("secret=%s", SECRET)
    app, access, masked = stream.getvalue().splitlines()
    assert app.endswith("INFO tokengate.test: listening on 0.0.0.0:8080 workers=2")
    assert "INFO tokengate.access: GET /api/acme/reports 200 3.25ms" in access
    assert 'user="bob smith"' in access and "outcome=allowed" in access
    assert SECRET not in masked and REDACTED in masked


def test_configure_logging_replaces_its_own_handler(captured: io.StringIO) -> None:
    """Configuring twice (as a reload does) leaves one tokengate handler, not two."""
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    configure_logging("info", "json", stream)
    logging.getLogger("tokengate.test").info("once")
    assert len(lines(stream)) == 1
    assert captured.getvalue() == ""


def test_bad_level_or_format_is_refused() -> None:
    """An unknown level or format raises instead of silently logging everything."""
    with pytest.raises(ValueError):
        configure_logging("loud", "json")
    with pytest.raises(ValueError):
        configure_logging("info", "xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/x?secret=1", "/api/x"),
        ("/a//b///c", "/a/b/c"),
        ("/p#frag", "/p"),
        ("", "/"),
        ("/" + "x" * 600, "/" + "x" * 511 + "..."),
    ],
)
def test_normalise_path(path: str, expected: str) -> None:
    """Logged paths drop the query and fragment, collapse slashes and are bounded."""
    assert normalise_path(path) == expected
