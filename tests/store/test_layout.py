"""The key layout: one slot per workspace, no braces from outside, and scripts that
declare every key they touch (so a cluster can route them and refuses any other)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from gateway.config import ConfigError, load_settings
from gateway.policy.ratelimit import window_key
from gateway.store.cluster import key_slot
from gateway.store.layout import Layout
from gateway.store.redis_base import SCRIPTS

LUA = resources.files("gateway.store").joinpath("lua")
CALL = re.compile(r"redis\.call\('(\w+)'(?:,\s*([^,)]+))?")
BOUND = re.compile(r"local (\w+) = KEYS\[|for \w+, (\w+) in ipairs\(KEYS\)")
KEYLESS = {"TIME", "PUBLISH"}


def scripts() -> dict[str, str]:
    return {f.name: f.read_text() for f in LUA.iterdir() if f.name.endswith(".lua")}


def test_every_key_a_workspace_owns_shares_its_slot() -> None:
    """Tokens, indexes, users, settings, trusted key and audit of a workspace hash to the
    slot of ``ws:<workspace>``; directory entries and rate-limit windows to their own."""
    layout = Layout("edge:")
    owned = [layout.ws("acme", w) for w in ("tokens", "users", "settings", "trusted", "audit")]
    owned += [layout.token("acme", "tgw_x"), layout.user("acme", "ada"),
              layout.owner_tokens("acme", "ada")]
    assert {key_slot(k) for k in owned} == {key_slot("ws:acme")}
    assert key_slot(layout.token_dir("tgw_x")) == key_slot("tok:tgw_x")
    assert key_slot(layout.user_dir("ada")) == key_slot("user:ada")
    assert key_slot(layout.rate_limit("default:t:tgw_x")) == key_slot("default:t:tgw_x")
    # A subject's windows (each class's and a token's own) share its slot.
    windows = [window_key("default", "u:ada"), window_key("burst", "u:ada"),
               window_key("token:tgw_x", "u:ada")]
    assert {key_slot(layout.rate_limit(w)) for w in windows} == {key_slot("u:ada")}
    assert key_slot("123456789") == 0x31C3  # CRC16/XMODEM, as Redis computes it


@pytest.mark.parametrize("prefix", ["tg{x}:", "{tg}:", "tg}:"])
def test_a_prefix_with_braces_is_a_config_error(prefix: str) -> None:
    """Braces in store.prefix would tag every key into one slot: refused at start."""
    with pytest.raises(ConfigError, match="store.prefix"):
        load_settings(environ={"TOKENGATE_STORE_PREFIX": prefix})


def test_every_script_has_a_shebang_and_is_registered() -> None:
    """Each script starts with ``#!lua`` (Redis then refuses any key outside the declared
    slot, on every topology) and the store registers exactly the scripts there are."""
    found = scripts()
    assert {name.removesuffix(".lua") for name in found} == {*SCRIPTS, "ratelimit", "ratelimit_both"}
    assert [name for name, text in found.items() if not text.startswith("#!lua\n")] == []


@pytest.mark.parametrize("name", sorted(scripts()))
def test_scripts_touch_only_declared_keys(name: str) -> None:
    """Every command a script calls names its key through KEYS (never a name built from
    ARGV or read from a record), and no script is told the key prefix."""
    text = scripts()[name]
    bound = {a or b for a, b in BOUND.findall(text)}
    for command, first in CALL.findall(text):
        if command in KEYLESS:
            continue
        assert first.startswith("KEYS[") or first in bound, (name, command, first)
    assert "prefix" not in text.lower()
