"""Deny rules, workspace scoping and rate-limit route classes, evaluated purely."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.policy.model import TokenType
from gateway.policy.paths import normalize_path
from gateway.policy.rules import (
    ALLOW,
    DEFAULT_RULES,
    STANDARD_METHODS,
    RuleSet,
    compile_route_classes,
    compile_rules,
)
from gateway.policy.scope import WorkspaceScope

WORKSPACE, MEMBER, PERSONAL, TRUSTED = (
    TokenType.WORKSPACE, TokenType.MEMBER, TokenType.PERSONAL, TokenType.TRUSTED
)
DEFAULTS = compile_rules(DEFAULT_RULES)

CLONE = "/api/acme/reports/r1/runs/u9/clone"
INVITES = "/api/acme/invites"

# Every spelling an ordinary framework would still route to the denied handler.
DENIED_SPELLINGS = [
    (CLONE, "clone-report-run"),
    ("/API/acme/REPORTS/r1/Runs/u9/CLONE", "clone-report-run"),
    (CLONE + "/", "clone-report-run"),
    ("//api//acme/reports/r1/runs/u9//clone", "clone-report-run"),
    ("/api/acme/./reports/r1/x/../runs/u9/clone", "clone-report-run"),
    ("/api/acme/reports/r1/runs/u9/cl%6Fne", "clone-report-run"),
    ("/api/acme/reports/r1/runs/u9/clone;v=1", "clone-report-run"),
    (INVITES, "create-invite"),
    ("/api/acme/INVITES/", "create-invite"),
    ("//api/acme/./invites", "create-invite"),
    ("/api/acme/invit%65s", "create-invite"),
    ("/%61pi/acme/%69nvites", "create-invite"),
    ("/api/acme/x/%2e%2e/invites", "create-invite"),
    ("/api/acme/invites;jsessionid=abc", "create-invite"),
]


def evaluate(rules: RuleSet, method: str, raw: str, token_type: TokenType) -> str | None:
    """The name of the rule that denies the request, or None."""
    verdict = rules.evaluate(method, normalize_path(raw), token_type)
    return verdict.deny.name if verdict.deny else None


@pytest.mark.parametrize("token_type", [WORKSPACE, MEMBER])
@pytest.mark.parametrize(("raw", "rule"), DENIED_SPELLINGS)
def test_defaults_deny_workspace_and_member_tokens(
    raw: str, rule: str, token_type: TokenType
) -> None:
    """Workspace and member tokens are denied both endpoints, in every routable spelling."""
    assert evaluate(DEFAULTS, "POST", raw, token_type) == rule


@pytest.mark.parametrize("token_type", [TRUSTED, PERSONAL])
@pytest.mark.parametrize(("raw", "rule"), DENIED_SPELLINGS)
def test_defaults_let_trusted_and_personal_tokens_through(
    raw: str, rule: str, token_type: TokenType
) -> None:
    """Trusted-auth and personal tokens are not restricted by the default rules."""
    assert evaluate(DEFAULTS, "POST", raw, token_type) is None


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("GET", INVITES),
        ("HEAD", INVITES),
        ("DELETE", INVITES + "/i1"),
        ("POST", "/api/acme/invites/i1/resend"),
        ("POST", "/api/acme/reports/r1/runs/u9"),
        ("POST", "/api/acme/reports/r1/runs/u9/clone/x"),
        ("POST", "/api/acme/reports/r1/clone"),
        ("POST", "/api/acme/invitesjson"),
        ("POST", "/other/acme/invites"),
    ],
)
def test_defaults_leave_other_requests_alone(method: str, raw: str) -> None:
    """Other methods and other paths pass the defaults, even for workspace tokens."""
    assert DEFAULTS.evaluate(method, normalize_path(raw), WORKSPACE) is ALLOW


@pytest.mark.parametrize("method", ["post", "Post", "PROPFIND", "FOO", "X-POST", ""])
def test_unknown_method_matches_any_rule(method: str) -> None:
    """A non-standard method (even 'post') is denied wherever a rule's path and type match."""
    assert evaluate(DEFAULTS, method, INVITES, MEMBER) == "create-invite"
    assert evaluate(DEFAULTS, method, INVITES, TRUSTED) is None
    assert evaluate(DEFAULTS, method, "/api/acme/reports", MEMBER) is None


def test_default_rules_as_shipped() -> None:
    """The shipped rules deny POST for workspace and member tokens, quoting the API's limitation."""
    by_name = {rule.name: rule for rule in DEFAULTS.rules}
    assert list(by_name) == ["clone-report-run", "create-invite"]
    for rule in by_name.values():
        assert rule.methods == {"POST"}
        assert rule.token_types == {WORKSPACE, MEMBER}
        assert rule.mode == "enforce"
        assert rule.case_sensitive is False
    assert by_name["clone-report-run"].pattern.pattern == (
        "/api/{workspace}/reports/{report}/runs/{run}/clone"
    )
    assert by_name["create-invite"].pattern.pattern == "/api/{workspace}/invites"
    assert by_name["clone-report-run"].message == (
        "Workspace and Member API tokens cannot be used with the Clone endpoint for Report Runs"
    )
    assert by_name["create-invite"].message == (
        "Workspace and Member API tokens cannot be used for creating new invites"
    )


def test_default_rules_cannot_be_mutated() -> None:
    """The shipped entries are read-only, so no caller can change them for everyone."""
    with pytest.raises(TypeError):
        DEFAULT_RULES[0]["mode"] = "dry-run"  # type: ignore[index]


def rule(**overrides: Any) -> dict[str, Any]:
    """A valid deny-rule entry with some keys changed."""
    entry: dict[str, Any] = {
        "name": "no-exports",
        "methods": ["GET"],
        "path": "/api/{workspace}/exports/**",
        "token_types": ["member"],
        "message": "no exports for members",
        "mode": "enforce",
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}


def test_dry_run_rule_lets_the_request_through_and_reports_itself() -> None:
    """A dry-run rule does not deny; the verdict lists it so it can be logged and counted."""
    rules = compile_rules([rule(mode="dry-run")])
    verdict = rules.evaluate("GET", "/api/acme/exports/e1", MEMBER)
    assert verdict.deny is None
    assert [r.name for r in verdict.dry_run] == ["no-exports"]


def test_dry_run_rules_are_reported_next_to_a_deny() -> None:
    """All matching dry-run rules are reported, also when an enforcing rule denies."""
    rules = compile_rules([
        rule(name="try-1", mode="dry-run"),
        rule(name="deny-1"),
        rule(name="deny-2"),
        rule(name="try-2", mode="dry-run"),
        rule(name="try-other", mode="dry-run", path="/elsewhere"),
    ])
    verdict = rules.evaluate("GET", "/api/acme/exports", MEMBER)
    assert verdict.deny is not None and verdict.deny.name == "deny-1"
    assert [r.name for r in verdict.dry_run] == ["try-1", "try-2"]


def test_no_match_is_the_shared_allow_verdict() -> None:
    """A request no rule matches gets the empty verdict."""
    verdict = compile_rules([rule()]).evaluate("GET", "/api/acme/reports", MEMBER)
    assert verdict is ALLOW and verdict.deny is None and verdict.dry_run == ()


@pytest.mark.parametrize(
    ("overrides", "method", "raw", "token_type", "denied"),
    [
        ({}, "GET", "/api/acme/exports/e1", MEMBER, True),
        ({}, "HEAD", "/api/acme/exports/e1", MEMBER, True),
        ({}, "POST", "/api/acme/exports/e1", MEMBER, False),
        ({}, "GET", "/api/acme/exports/e1", WORKSPACE, False),
        ({"methods": ["*"]}, "DELETE", "/api/acme/exports", MEMBER, True),
        ({"methods": None}, "PATCH", "/api/acme/exports", MEMBER, True),
        ({"token_types": None}, "GET", "/api/acme/exports", TRUSTED, True),
        ({"case_sensitive": True}, "GET", "/api/acme/EXPORTS", MEMBER, False),
        ({"case_sensitive": True}, "GET", "/api/acme/exports/E1", MEMBER, True),
        ({"methods": ["HEAD"]}, "GET", "/api/acme/exports", MEMBER, False),
    ],
    ids=[
        "GET matches", "HEAD is covered by GET", "other method passes", "other type passes",
        "* is any method", "no methods is any method", "no token types is all types",
        "case-sensitive literal", "case-sensitive rule ignores param case", "HEAD alone not GET",
    ],
)
def test_rule_settings(
    overrides: dict[str, Any], method: str, raw: str, token_type: TokenType, denied: bool
) -> None:
    """Each rule setting narrows or widens what the rule matches as documented."""
    rules = compile_rules([rule(**overrides)])
    assert (evaluate(rules, method, raw, token_type) is not None) is denied


def test_compiled_rule_keeps_its_settings() -> None:
    """A compiled rule carries its name, message, mode and case setting; GET brings HEAD."""
    (compiled,) = compile_rules([rule(case_sensitive=True, mode="dry-run")]).rules
    assert compiled.name == "no-exports"
    assert compiled.methods == {"GET", "HEAD"}
    assert compiled.token_types == {MEMBER}
    assert compiled.message == "no exports for members"
    assert compiled.mode == "dry-run"
    assert compiled.case_sensitive is True and compiled.pattern.case_sensitive is True


def test_message_defaults_to_naming_the_rule() -> None:
    """A rule without a message gets one that names it."""
    (compiled,) = compile_rules([rule(message=None)]).rules
    assert compiled.message == "denied by rule 'no-exports'"


def test_no_rules_allow_everything() -> None:
    """An empty rule set allows every request."""
    assert len(compile_rules([])) == 0
    assert compile_rules([]).evaluate("POST", INVITES, WORKSPACE) is ALLOW


RULE_ERRORS = [
    # (entries, the error message, why)
    ([rule(token_types=["robot"])], "deny rule 'no-exports': unknown token type 'robot'",
     "unknown token type"),
    ([rule(), rule()], "deny rule 'no-exports': duplicate rule name", "duplicate name"),
    ([rule(path="/api/**/x")], "deny rule 'no-exports': pattern '/api/**/x'", "bad pattern"),
    ([rule(path="api")], "deny rule 'no-exports': pattern 'api': must start with '/'",
     "relative pattern"),
    ([rule(path=7)], "deny rule 'no-exports': path must be a string", "path not a string"),
    ([rule(methods=["post"])], "deny rule 'no-exports': unknown method 'post' (methods are upper",
     "lower-case method"),
    ([rule(methods=["FETCH"])], "deny rule 'no-exports': unknown method 'FETCH'",
     "unknown method"),
    ([rule(methods="POST")], "deny rule 'no-exports': methods must be a non-empty list",
     "methods as a bare string"),
    ([rule(methods=[])], "deny rule 'no-exports': methods must be a non-empty list",
     "empty methods"),
    ([rule(token_types=[])], "deny rule 'no-exports': token_types must be a non-empty list",
     "empty token types"),
    ([rule(token_types=[1])], "deny rule 'no-exports': token_types must list strings",
     "token type not a string"),
    ([rule(mode="audit")], "deny rule 'no-exports': mode must be 'enforce' or 'dry-run'",
     "bad mode"),
    ([rule(message="")], "deny rule 'no-exports': message must be a non-empty string",
     "empty message"),
    ([rule(case_sensitive="false")], "deny rule 'no-exports': case_sensitive must be true",
     "case_sensitive as a string"),
    ([rule(paht="/x")], "deny rule 'no-exports': unknown key(s) 'paht'", "unknown key"),
    ([rule(name=None)], "deny rule #1: missing 'name'", "missing name"),
    ([rule(), rule(name="b", path=None)], "deny rule 'b': missing 'path'", "missing path"),
    ([rule(name="a b")], "deny rule 'a b': name must be", "name with a space"),
    ([rule(name="")], "deny rule #1: name must be", "empty name"),
    (["clone"], "deny rule #1: must be a table", "entry not a table"),
]


@pytest.mark.parametrize(("entries", "error", "why"), RULE_ERRORS, ids=[e[2] for e in RULE_ERRORS])
def test_rule_config_errors(entries: list[Mapping[str, Any]], error: str, why: str) -> None:
    """An invalid rule entry is a ValueError whose message names the rule and the fault."""
    with pytest.raises(ValueError) as caught:
        compile_rules(entries)
    assert str(caught.value).startswith(error)


SCOPE = WorkspaceScope()

WORKSPACE_OF = [
    # (raw path, workspace it names)
    ("/api/acme/reports", "acme"),
    ("/api/acme", "acme"),
    ("/api/acme/", "acme"),
    ("/API/acme/reports", "acme"),
    ("/api/Acme/reports", "Acme"),
    ("//api/x/../acme/reports", "acme"),
    ("/api/%61cme/reports", "acme"),
    ("/api/ac%20me/reports", "ac me"),
    ("/api/acme;x/reports", "acme;x"),
    ("/api", None),
    ("/api/", None),
    ("/", None),
    ("/health", None),
    ("/apis/acme", None),
]


@pytest.mark.parametrize(("raw", "workspace"), WORKSPACE_OF)
def test_workspace_of(raw: str, workspace: str | None) -> None:
    """The workspace a path names is read from the normalised path, decoded."""
    assert SCOPE.workspace_of(normalize_path(raw)) == workspace


@pytest.mark.parametrize(
    ("raw", "token_workspace", "permitted"),
    [
        ("/api/acme/reports", "acme", True),
        ("/API/acme/Reports", "acme", True),
        ("/api/ACME/reports", "acme", False),
        ("/api/Acme/reports", "acme", False),
        ("/api/acme/reports", "Acme", False),
        ("/api/%41cme/reports", "acme", False),
        ("/api/Acme/reports", "Acme", True),
        ("/api/acme/reports", "other", False),
        ("/api/other/invites", "acme", False),
        ("/api/acme/../other/reports", "acme", False),
        ("/api/acme;x/reports", "acme", False),
        ("/health", "acme", True),
    ],
)
def test_workspace_scope_permits(raw: str, token_workspace: str, permitted: bool) -> None:
    """A path naming another workspace than the token's (compared exactly, case included) is refused; one naming none is not."""
    assert SCOPE.permits(normalize_path(raw), token_workspace) is permitted


def test_case_sensitive_workspace_scope() -> None:
    """A case-sensitive scope minds the case of its literals too; the workspace is exact either way."""
    scope = WorkspaceScope("/v1/orgs/{workspace}/**", case_sensitive=True)
    assert scope.permits("/v1/orgs/acme/x", "acme")
    assert not scope.permits("/v1/orgs/Acme/x", "acme")
    assert scope.workspace_of("/V1/orgs/acme") is None
    assert not WorkspaceScope("/v1/orgs/{workspace}/**").permits("/V1/orgs/Acme/x", "acme")


# (methods the upstream could route, path, token type, denying rule, why)
CANDIDATES = [
    (("GET",), CLONE, WORKSPACE, None, "GET alone passes"),
    (("GET", "POST"), CLONE, WORKSPACE, "clone-report-run", "an override to POST is denied"),
    (("POST", "GET"), INVITES, MEMBER, "create-invite", "POST overridden to GET is still POST"),
    (("GET", "PUT", "DELETE"), CLONE, WORKSPACE, None, "overrides no rule names pass"),
    (("GET", "*"), CLONE, WORKSPACE, "clone-report-run", "a form POST could be any method"),
    (("GET", "BREW"), INVITES, WORKSPACE, "create-invite", "an unknown override meets every rule"),
    (("GET", "POST"), CLONE, PERSONAL, None, "the rules' token types still apply"),
    (("GET", "POST"), "/api/acme/reports", WORKSPACE, None, "the rules' paths still apply"),
    ((), CLONE, WORKSPACE, None, "no methods, no rules"),
]


@pytest.mark.parametrize(("methods", "raw", "token_type", "rule", "why"), CANDIDATES,
                         ids=[c[4] for c in CANDIDATES])
def test_evaluate_methods(
    methods: tuple[str, ...], raw: str, token_type: TokenType, rule: str | None, why: str
) -> None:
    """A request is denied when any method the upstream could route it as is denied."""
    verdict = DEFAULTS.evaluate_methods(methods, normalize_path(raw), token_type)
    assert (verdict.deny.name if verdict.deny else None) == rule


def test_evaluate_methods_reports_dry_run_rules_of_every_candidate() -> None:
    """Dry-run rules of every candidate method are reported, each once, in config order."""
    rules = compile_rules([
        {"name": "watch-put", "methods": ["PUT"], "path": "/a", "mode": "dry-run"},
        {"name": "watch-get", "methods": ["GET"], "path": "/a", "mode": "dry-run"},
        {"name": "deny-delete", "methods": ["DELETE"], "path": "/a"},
    ])
    verdict = rules.evaluate_methods(("GET", "PUT"), "/a", WORKSPACE)
    assert verdict.deny is None
    assert [r.name for r in verdict.dry_run] == ["watch-put", "watch-get"]
    assert rules.evaluate_methods(("GET", "*"), "/a", WORKSPACE).deny.name == "deny-delete"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("pattern", "words"),
    [("/api/{ws}/**", "must contain '{workspace}'"), ("/api/**/{workspace}", "'**'")],
)
def test_workspace_scope_pattern_errors(pattern: str, words: str) -> None:
    """A workspace_path without a {workspace} segment, or invalid, is refused."""
    with pytest.raises(ValueError, match="workspace_path|pattern") as caught:
        WorkspaceScope(pattern)
    assert words in str(caught.value)


def route_class(**overrides: Any) -> dict[str, Any]:
    """A valid rate-limit class entry with some keys changed."""
    entry: dict[str, Any] = {
        "name": "reports", "methods": ["GET"], "path": "/api/{workspace}/reports/**",
        "limit": 100, "window_seconds": 10,
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}


CLASSES = compile_route_classes(
    [
        route_class(),
        route_class(name="runs", methods=["POST"], path="/api/{workspace}/reports/{r}/runs",
                    limit=5, window_seconds=60),
        route_class(name="exports", methods=None, path="/api/{workspace}/exports/**", limit=2),
    ],
    default_limit=40, default_window=10,
)


@pytest.mark.parametrize(
    ("method", "raw", "name"),
    [
        ("GET", "/api/acme/reports", "reports"),
        ("GET", "/API/acme/Reports/r1/", "reports"),
        ("HEAD", "/api/acme/reports/r1", "reports"),
        ("POST", "/api/acme/reports/r1/runs", "runs"),
        ("POST", "/api/acme/reports/r1/runs/", "runs"),
        ("POST", "/api/acme/reports", "default"),
        ("PUT", "/api/acme/exports/e1", "exports"),
        ("GET", "/api/acme/invites", "default"),
        ("GET", "/", "default"),
        ("get", "/api/acme/reports", "reports"),
        ("BREW", "/api/acme/reports/r1/runs", "reports"),
    ],
    ids=[
        "GET class", "spellings", "HEAD with GET", "POST class", "trailing slash",
        "method outside class", "any-method class", "default", "root", "unknown method",
        "unknown method takes the first path match",
    ],
)
def test_classify(method: str, raw: str, name: str) -> None:
    """A request falls in the first class matching method and path, else in the default."""
    assert CLASSES.classify(method, normalize_path(raw)).name == name


@pytest.mark.parametrize(
    ("methods", "raw", "name"),
    [
        (("GET",), "/api/acme/reports/r1/runs", "reports"),
        (("GET", "POST"), "/api/acme/reports/r1/runs", "runs"),
        (("POST", "GET"), "/api/acme/reports/r1/runs", "runs"),
        (("GET", "DELETE"), "/api/acme/reports", "default"),
        (("POST", "*"), "/api/acme/reports/r1/runs", "runs"),
        (("GET", "*"), "/api/acme/reports", "reports"),
        (("GET", "BREW"), "/api/acme/exports/e1", "exports"),
        (("*",), "/api/acme/reports", "default"),
    ],
    ids=["one method", "override to a stricter class", "override to a laxer class",
         "override to the default", "a form POST keeps its class",
         "any method is no class of its own", "unknown method", "nothing named"],
)
def test_classify_methods(methods: tuple[str, ...], raw: str, name: str) -> None:
    """With a method override the strictest class of every candidate applies, so an override never loosens a limit."""
    assert CLASSES.classify_methods(methods, normalize_path(raw)).name == name


def test_class_limits_and_defaults() -> None:
    """Each class has its own limit and window; unset ones and the default take rate_limit's."""
    by_name = {c.name: c for c in CLASSES}
    assert list(by_name) == ["reports", "runs", "exports", "default"]
    assert (by_name["reports"].limit, by_name["reports"].window_seconds) == (100, 10.0)
    assert (by_name["runs"].limit, by_name["runs"].window_seconds) == (5, 60.0)
    assert (by_name["exports"].limit, by_name["exports"].window_seconds) == (2, 10.0)
    assert CLASSES.default is by_name["default"]
    assert (CLASSES.default.limit, CLASSES.default.window_seconds) == (40, 10.0)
    assert CLASSES.default.pattern is None


def test_no_classes_means_the_default_for_everything() -> None:
    """Without named classes every request is in the default class."""
    classes = compile_route_classes([], default_limit=40, default_window=10)
    assert classes.classify("POST", "/api/acme/reports").name == "default"
    assert classes.classes == ()


CLASS_ERRORS = [
    # (entries, default limit, default window, the error message, why)
    ([route_class(name="default")], 40, 10,
     "rate-limit class 'default': the name 'default' is reserved", "reserved name"),
    ([route_class(), route_class()], 40, 10, "rate-limit class 'reports': duplicate class name",
     "duplicate name"),
    ([route_class(path="/api/{}")], 40, 10, "rate-limit class 'reports': pattern '/api/{}'",
     "bad pattern"),
    ([route_class(limit=0)], 40, 10, "rate-limit class 'reports': limit must be a whole number",
     "zero limit"),
    ([route_class(limit=2.5)], 40, 10, "rate-limit class 'reports': limit must be a whole number",
     "fractional limit"),
    ([route_class(limit=True)], 40, 10, "rate-limit class 'reports': limit must be a whole",
     "boolean limit"),
    ([route_class(window_seconds=0)], 40, 10,
     "rate-limit class 'reports': window_seconds must be a number above zero", "zero window"),
    ([route_class(window_seconds=float("inf"))], 40, 10,
     "rate-limit class 'reports': window_seconds must be a number above zero", "endless window"),
    ([route_class(window_seconds="10")], 40, 10,
     "rate-limit class 'reports': window_seconds must be a number", "window as a string"),
    ([route_class(methods=["get"])], 40, 10, "rate-limit class 'reports': unknown method 'get'",
     "lower-case method"),
    ([route_class(token_types=["member"])], 40, 10,
     "rate-limit class 'reports': unknown key(s) 'token_types'", "unknown key"),
    ([route_class(path=None)], 40, 10, "rate-limit class 'reports': missing 'path'",
     "missing path"),
    ([], 0, 10, "rate_limit: limit must be a whole number", "bad default limit"),
    ([], 40, -1, "rate_limit: window_seconds must be a number above zero", "bad default window"),
]


@pytest.mark.parametrize(
    ("entries", "limit", "window", "error", "why"), CLASS_ERRORS, ids=[e[4] for e in CLASS_ERRORS]
)
def test_route_class_config_errors(
    entries: list[Mapping[str, Any]], limit: int, window: float, error: str, why: str
) -> None:
    """An invalid class entry is a ValueError whose message names the class and the fault."""
    with pytest.raises(ValueError) as caught:
        compile_route_classes(entries, default_limit=limit, default_window=window)
    assert str(caught.value).startswith(error)


def test_every_standard_method_is_indexed() -> None:
    """Each standard method has its own index entry, so lookups never fall through by accident."""
    assert len(STANDARD_METHODS) == 9
    for method in STANDARD_METHODS:
        assert DEFAULTS.evaluate(method, "/x", WORKSPACE) is ALLOW


def test_rules_module_imports_neither_aiohttp_nor_redis() -> None:
    """Importing the rules (and so paths and patterns) loads neither aiohttp nor redis."""
    code = (
        "import sys, gateway.policy.rules\n"
        "loaded = sorted(m for m in ('aiohttp', 'redis') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


@st.composite
def routable_spelling(draw: st.DrawFn, path: str) -> str:
    """A spelling of ``path`` that a framework decoding and resolving it would route alike."""
    out: list[str] = []
    for segment in path.strip("/").split("/"):
        for _ in range(draw(st.integers(0, 2))):
            out.append(draw(st.sampled_from([".", "%2e", "", "x/..", "x/%2E%2e"])))
        spelled = ""
        for char in segment:
            char = char.upper() if draw(st.booleans()) else char
            if draw(st.booleans()):
                escape = f"%{ord(char):02x}"
                char = escape.upper() if draw(st.booleans()) else escape
            spelled += char
        out.append(spelled)
    tail = draw(st.sampled_from(["", "/", "//", "/.", ";v=1"]))
    return draw(st.sampled_from(["/", "//"])) + "/".join(out) + tail


@given(routable_spelling(INVITES), st.sampled_from([WORKSPACE, MEMBER]))
def test_no_routable_spelling_of_a_denied_path_slips_through(raw: str, token: TokenType) -> None:
    """Random mixes of case, escapes, dot segments and slashes are still denied."""
    assert evaluate(DEFAULTS, "POST", raw, token) == "create-invite"


@given(routable_spelling(CLONE))
def test_no_routable_spelling_of_the_clone_path_slips_through(raw: str) -> None:
    """Random spellings of the clone endpoint are still denied for member tokens."""
    assert evaluate(DEFAULTS, "POST", raw, MEMBER) == "clone-report-run"
