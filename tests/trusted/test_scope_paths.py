"""Workspace scope with the shipped defaults: Mode paths scoped, ThoughtSpot's REST API not."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, compiled_policy, load_settings
from gateway.policy.paths import normalize_path
from gateway.policy.scope import WorkspaceScope

DEFAULTS = load_settings(environ={}).workspace_path_except
SCOPE: WorkspaceScope = compiled_policy(load_settings(environ={})).scope

# (raw path, the workspace it names with the default config, why)
PATHS = [
    # ThoughtSpot REST API v2 and v1: the org comes with the token.
    ("/api/rest/2.0/auth/session/user", None, "v2 session user"),
    ("/api/rest/2.0/metadata/search", None, "v2 metadata search"),
    ("/api/rest/2.0/auth/token/full", None, "v2 token endpoint"),
    ("/api/rest/2.0", None, "v2 root"),
    ("/API/Rest/2.0/users/search", None, "literal segments ignore case"),
    ("/api/rest/2%2E0/users/search", None, "an escaped dot is still 2.0"),
    ("/api/rest/2.0;jsessionid=x/users", None, "a ;param is ignored, as Tomcat routes it"),
    ("/api/rest/2.0.json", None, "a format suffix on the last segment"),
    ("/callosum/v1/tspublic/v1/metadata/list", None, "v1 is outside workspace_path"),
    ("/callosum/v1/tspublic/v1/session/info", None, "v1 session info"),
    # Mode-style paths still name their workspace.
    ("/api/acme/reports", "acme", "a Mode workspace"),
    ("/api/acme/reports/r1/runs/x/clone", "acme", "deep Mode path"),
    ("/api/rest", "rest", "a Mode workspace named rest"),
    ("/api/rest/reports", "rest", "rest's Mode resources stay scoped"),
    ("/api/rest/2/reports", "rest", "2 is not 2.0"),
    ("/api/rest/2.00/reports", "rest", "2.00 is not 2.0"),
    ("/api/rest/v2.0/reports", "rest", "v2.0 is not 2.0"),
    ("/api/rest2.0/reports", "rest2.0", "one segment, not rest then 2.0"),
    ("/api/rest/2.0/../../acme/reports", "acme", "dot segments are resolved first"),
    ("/api/rest/x/../2.0/../../acme/reports", "acme", "however deep"),
    ("/api/2.0/reports", "2.0", "a workspace named 2.0 is not excepted"),
]


@pytest.mark.parametrize(("raw", "workspace", "why"), PATHS, ids=[p[2] for p in PATHS])
def test_default_scope_reads_workspaces(raw: str, workspace: str | None, why: str) -> None:
    """ThoughtSpot's REST paths name no workspace; Mode paths name theirs, even one called rest."""
    assert SCOPE.workspace_of(normalize_path(raw)) == workspace


# (raw path, token's workspace, permitted, why)
PERMITS = [
    ("/api/rest/2.0/metadata/search", "default", True, "any workspace's token on v2"),
    ("/api/rest/2.0/metadata/search", "acme", True, "another workspace's token on v2"),
    ("/callosum/v1/tspublic/v1/metadata/list", "acme", True, "v1"),
    ("/api/acme/reports", "acme", True, "own Mode workspace"),
    ("/api/acme/reports", "default", False, "another Mode workspace"),
    ("/api/rest/reports", "default", False, "workspace rest is not everyone's"),
    ("/api/rest/reports", "rest", True, "workspace rest's own token"),
    ("/api/rest/2.0/../../acme/x", "default", False, "no escape through dot segments"),
]


@pytest.mark.parametrize(("raw", "token_ws", "permitted", "why"), PERMITS,
                         ids=[p[3] for p in PERMITS])
def test_default_scope_permits(raw: str, token_ws: str, permitted: bool, why: str) -> None:
    """Scoping is enforced wherever a path names a workspace, and only there."""
    assert SCOPE.permits(normalize_path(raw), token_ws) is permitted


def test_default_config_excepts_only_thoughtspot_v2() -> None:
    """The shipped exception list is ThoughtSpot's REST API v2 prefix, nothing wider."""
    assert DEFAULTS == ["/api/rest/2.0/**"]


def test_no_exceptions_is_the_old_scope() -> None:
    """``workspace_path_except = []`` reads /api/rest/2.0 as workspace "rest" again."""
    scope = compiled_policy(load_settings(environ={}, overrides={"workspace_path_except": []})).scope
    assert scope.workspace_of("/api/rest/2.0/metadata/search") == "rest"


def test_exceptions_from_the_environment() -> None:
    """TOKENGATE_WORKSPACE_PATH_EXCEPT is a comma-separated list."""
    settings = load_settings(environ={
        "TOKENGATE_WORKSPACE_PATH_EXCEPT": "/api/rest/2.0/**, /api/public/**"})
    assert settings.workspace_path_except == ["/api/rest/2.0/**", "/api/public/**"]
    scope = compiled_policy(settings).scope
    assert scope.workspace_of("/api/public/x") is None
    assert scope.workspace_of("/api/acme/x") == "acme"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (["/api/{workspace}/2.0/**"], "names a workspace"),
        (["api/rest/**"], "must start with '/'"),
        (["/api/**/x"], "'**' may only be the last segment"),
        ([7], "valid string"),
    ],
)
def test_bad_exceptions_stop_start(value: object, words: str) -> None:
    """A bad workspace_path_except entry is a config error naming the key and the fault."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, overrides={"workspace_path_except": value})
    assert "workspace_path_except" in str(caught.value)
    assert words in str(caught.value)
