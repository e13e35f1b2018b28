"""The [upstream] keys of the lean client: unix: URLs, ca_file, client, idle_timeout_seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings


def test_defaults_pick_the_lean_client() -> None:
    """Unset, the upstream client is the lean one with a 30 s idle timeout and the system CAs."""
    upstream = load_settings(environ={}).upstream
    assert (upstream.client, upstream.idle_timeout_seconds, upstream.ca_file) == (
        "lean", 30.0, None)


@pytest.mark.parametrize("url", ["unix:/run/app.sock", "unix:///run/app.sock"])
def test_a_unix_socket_upstream_is_an_absolute_path(url: str) -> None:
    """``unix:`` plus an absolute path names a socket; the assertion audience is the URL."""
    settings = load_settings(environ={"TOKENGATE_UPSTREAM_URL": url})
    assert settings.upstream.url == url
    assert settings.assertion_audience == url


@pytest.mark.parametrize(("env", "words"), [
    ({"TOKENGATE_UPSTREAM_URL": "unix:run/app.sock"}, "unix:/absolute/path"),
    ({"TOKENGATE_UPSTREAM_URL": "unix://host/run/app.sock"}, "unix:/absolute/path"),
    ({"TOKENGATE_UPSTREAM_URL": "unix:/run/app.sock?x=1"}, "unix:/absolute/path"),
    ({"TOKENGATE_UPSTREAM_CLIENT": "curl"}, "upstream.client"),
    ({"TOKENGATE_UPSTREAM_IDLE_TIMEOUT_SECONDS": "0"}, "upstream.idle_timeout_seconds"),
    ({"TOKENGATE_UPSTREAM_CA_FILE": "/no/such/ca.pem"}, "no such file"),
])
def test_bad_upstream_settings_are_one_line_errors(env: dict[str, str], words: str) -> None:
    """A relative socket path, an unknown client, a zero idle timeout or a missing CA file
    stop start-up with one line naming the problem."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    message = str(info.value)
    assert words in message and "upstream." in message and "\n" not in message


def test_ca_file_must_exist(tmp_path: Path) -> None:
    """An existing CA file is accepted as given."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_settings(environ={"TOKENGATE_UPSTREAM_CA_FILE": str(ca)}).upstream.ca_file == \
        str(ca)
