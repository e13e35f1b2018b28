"""Endpoint rules as data: deny rules and rate-limit route classes.

Everything here is compiled once from configuration and then asked, per request,
about a method and a *normalised* path (:func:`gateway.policy.paths.normalize_path`).
Per request the cost is one dict lookup and a few segment comparisons.

Two routing habits of ordinary web frameworks shape the method matching, so that
a rule written for a handler also covers every request routed to it:

* HEAD is served by the GET handler, so a rule or class naming GET covers HEAD.
* A method outside the standard set (including "post" in lower case, which some
  servers accept) could be routed anywhere, so it matches every rule and class
  whose path and token type match: it is forwarded only if no rule could match.
* A method override (``X-HTTP-Method-Override``, ``_method``) lets the upstream
  route another method than the request line's: the proxy checks every
  candidate (:mod:`gateway.policy.methods`) with ``evaluate_methods``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast

from gateway.policy.model import TokenType
from gateway.policy.patterns import PathPattern, split_path

STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
ANY_METHOD = "*"
Mode = Literal["enforce", "dry-run"]
_MODES: tuple[Mode, ...] = ("enforce", "dry-run")
# Names end up in problem bodies and metric labels: keep them short and plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RULE_KEYS = frozenset({"name", "methods", "path", "token_types", "message", "mode", "case_sensitive"})
_CLASS_KEYS = frozenset({"name", "methods", "path", "limit", "window_seconds", "case_sensitive"})
DEFAULT_CLASS = "default"
SCOPE_RULE = "scope"
NETWORK_RULE = "network"
RESERVED_RULE_NAMES = frozenset({SCOPE_RULE, NETWORK_RULE})
"""Rule names of a token's own restrictions (proxy/restrict.py); no ``[[deny]]`` rule takes them."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DenyRule:
    """Requests with these methods, path and token types are refused (or only logged)."""

    name: str
    methods: frozenset[str]
    pattern: PathPattern
    token_types: frozenset[TokenType]
    message: str
    mode: Mode = "enforce"
    case_sensitive: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules say about one request."""

    deny: DenyRule | None = None
    dry_run: tuple[DenyRule, ...] = ()


ALLOW = Verdict()


def _default_rule(name: str, path: str, message: str) -> Mapping[str, Any]:
    """A shipped deny rule: POST only, for workspace and member tokens, enforced."""
    return MappingProxyType({
        "name": name, "methods": ("POST",), "path": path,
        "token_types": ("workspace", "member"), "message": message, "mode": "enforce",
    })


DEFAULT_RULES: tuple[Mapping[str, Any], ...] = (
    _default_rule(
        "clone-report-run",
        "/api/{workspace}/reports/{report}/runs/{run}/clone",
        "Workspace and Member API tokens cannot be used with the Clone endpoint for Report Runs",
    ),
    _default_rule(
        "create-invite",
        "/api/{workspace}/invites",
        "Workspace and Member API tokens cannot be used for creating new invites",
    ),
)
"""The shipped deny rules, as config entries; active when no rules are configured."""


class RuleSet:
    """Deny rules compiled and indexed by method and token type."""

    __slots__ = ("_index", "rules")

    def __init__(self, rules: Sequence[DenyRule]) -> None:
        self.rules = tuple(rules)
        self._index: dict[tuple[str | None, TokenType], tuple[DenyRule, ...]] = {
            (method, token_type): tuple(
                rule for rule in candidates if token_type in rule.token_types
            )
            for method, candidates in _by_method(self.rules, lambda r: r.methods).items()
            for token_type in TokenType
        }

    def evaluate(self, method: str, path: str, token_type: TokenType) -> Verdict:
        """The first enforcing rule and all dry-run rules matching a normalised path."""
        key = method if method in STANDARD_METHODS else None
        return self._verdict(self._index[(key, token_type)], path)

    def evaluate_methods(self, methods: Iterable[str], path: str, token_type: TokenType) -> Verdict:
        """Like ``evaluate``, with every rule any of ``methods`` could meet ("*": any rule)."""
        keys = {method if method in STANDARD_METHODS else None for method in methods}
        every = self._index[(None, token_type)]
        if None in keys:
            return self._verdict(every, path)
        chosen = {id(rule) for key in keys for rule in self._index[(key, token_type)]}
        return self._verdict(tuple(rule for rule in every if id(rule) in chosen), path)

    def _verdict(self, candidates: tuple[DenyRule, ...], path: str) -> Verdict:
        if not candidates:
            return ALLOW
        segments = split_path(path)
        matched = [r for r in candidates if r.pattern.match_segments(segments) is not None]
        if not matched:
            return ALLOW
        deny = next((r for r in matched if r.mode == "enforce"), None)
        return Verdict(deny=deny, dry_run=tuple(r for r in matched if r.mode == "dry-run"))

    def __len__(self) -> int:
        return len(self.rules)


def compile_rules(entries: Sequence[Mapping[str, Any]]) -> RuleSet:
    """Deny rules from config entries; ``ValueError`` names the rule at fault."""
    rules: list[DenyRule] = []
    for position, entry in enumerate(entries, start=1):
        what = _label("deny rule", entry, position)
        _check_keys(what, entry, _RULE_KEYS, required=("name", "path"))
        name = _name(what, entry)
        _require(what, all(rule.name != name for rule in rules), "duplicate rule name")
        # A token's own restrictions refuse under these names (proxy/restrict.py).
        _require(what, name not in RESERVED_RULE_NAMES,
                 f"the name {name!r} is reserved for a token's own restrictions")
        mode = entry.get("mode", "enforce")
        _require(what, mode in _MODES, f"mode must be 'enforce' or 'dry-run', not {mode!r}")
        message = entry.get("message", f"denied by rule '{name}'")
        _require(what, isinstance(message, str) and bool(message.strip()),
                 "message must be a non-empty string")
        pattern = _pattern(what, entry)
        rules.append(DenyRule(
            name=name,
            methods=_methods(what, entry),
            pattern=pattern,
            token_types=_token_types(what, entry),
            message=message,
            mode=mode,
            case_sensitive=pattern.case_sensitive,
        ))
    return RuleSet(rules)


@dataclass(frozen=True, slots=True)
class RouteClass:
    """A class of resources with its own rate limit; ``pattern`` None matches all."""

    name: str
    methods: frozenset[str]
    pattern: PathPattern | None
    limit: int
    window_seconds: float


class RouteClasses:
    """Rate-limit classes compiled and indexed by method, with the default last."""

    __slots__ = ("_index", "classes", "default")

    def __init__(self, classes: Sequence[RouteClass], default: RouteClass) -> None:
        self.classes = tuple(classes)
        self.default = default
        self._index = _by_method(self.classes, lambda c: c.methods)

    def classify(self, method: str, path: str) -> RouteClass:
        """The first named class matching the method and normalised path, else the default."""
        candidates = self._index[method if method in STANDARD_METHODS else None]
        if candidates:
            segments = split_path(path)
            for route_class in candidates:
                pattern = route_class.pattern
                if pattern is None or pattern.match_segments(segments) is not None:
                    return route_class
        return self.default

    def classify_methods(self, methods: Iterable[str], path: str) -> RouteClass:
        """The strictest class any of ``methods`` is classified as ("*" is ignored).

        With a method override the upstream may route either method; taking
        the strictest means naming an override never buys a laxer limit. A
        form POST's "could be any method" keeps its POST class: taking the
        strictest on the path would move every upload off its own class.
        """
        found = [self.classify(method, path) for method in methods if method != ANY_METHOD]
        return min(found, key=lambda c: c.limit / c.window_seconds, default=self.default)

    def __iter__(self) -> Iterator[RouteClass]:
        return iter((*self.classes, self.default))


def compile_route_classes(
    entries: Sequence[Mapping[str, Any]], *, default_limit: int, default_window: float
) -> RouteClasses:
    """Rate-limit classes from config entries; ``ValueError`` names the class at fault."""
    default = RouteClass(
        name=DEFAULT_CLASS,
        methods=frozenset({ANY_METHOD}),
        pattern=None,
        limit=_limit("rate_limit", default_limit),
        window_seconds=_window("rate_limit", default_window),
    )
    classes: list[RouteClass] = []
    for position, entry in enumerate(entries, start=1):
        what = _label("rate-limit class", entry, position)
        _check_keys(what, entry, _CLASS_KEYS, required=("name", "path"))
        name = _name(what, entry)
        # "default" names the fallback, whose limit is rate_limit.limit / window_seconds.
        _require(what, name != DEFAULT_CLASS, "the name 'default' is reserved for the fallback")
        _require(what, all(c.name != name for c in classes), "duplicate class name")
        classes.append(RouteClass(
            name=name,
            methods=_methods(what, entry),
            pattern=_pattern(what, entry),
            limit=_limit(what, entry.get("limit", default_limit)),
            window_seconds=_window(what, entry.get("window_seconds", default_window)),
        ))
    return RouteClasses(classes, default)


def _by_method(
    items: Sequence[_T], methods_of: Callable[[_T], frozenset[str]]
) -> dict[str | None, tuple[_T, ...]]:
    """For each standard method (and None for any other), the items it may match, in order."""
    index: dict[str | None, tuple[_T, ...]] = {
        method: tuple(
            item for item in items
            if ANY_METHOD in methods_of(item) or method in methods_of(item)
        )
        for method in STANDARD_METHODS
    }
    index[None] = tuple(items)
    return index


def _label(kind: str, entry: Mapping[str, Any], position: int) -> str:
    """How errors name an entry: by its name, or by position when it has none."""
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return f"{kind} {name!r}" if isinstance(name, str) and name else f"{kind} #{position}"


def _check_keys(
    what: str, entry: Mapping[str, Any], allowed: frozenset[str], *, required: Sequence[str]
) -> None:
    """Refuse entries that are not tables, have unknown keys or miss required ones."""
    _require(what, isinstance(entry, Mapping), "must be a table of settings")
    unknown = sorted(set(entry) - allowed)
    _require(what, not unknown, f"unknown key(s) {', '.join(map(repr, unknown))}")
    for key in required:
        _require(what, key in entry, f"missing {key!r}")


def _require(what: str, ok: bool, problem: str) -> None:
    """Raise the configuration error for ``what`` unless ``ok``."""
    # Always ValueError, also for a value of the wrong type: the config loader
    # catches ValueError alone and turns it into exit 2 with this message.
    if not ok:
        raise ValueError(f"{what}: {problem}")


def _name(what: str, entry: Mapping[str, Any]) -> str:
    """The entry's name, checked to be plain enough for a metric label."""
    name = entry["name"]
    _require(what, isinstance(name, str) and bool(_NAME.fullmatch(name)),
             "name must be 1-64 letters, digits, '.', '_' or '-'")
    return cast(str, name)


def _bool(what: str, entry: Mapping[str, Any], key: str) -> bool:
    """A boolean setting (default false); a string such as "false" is refused."""
    value = entry.get(key, False)
    _require(what, isinstance(value, bool), f"{key} must be true or false")
    return cast(bool, value)


def _strings(what: str, entry: Mapping[str, Any], key: str) -> list[str]:
    """A non-empty list of strings (a bare string is refused, not split into letters)."""
    value = entry[key]
    _require(what, not isinstance(value, str) and isinstance(value, Sequence) and bool(value),
             f"{key} must be a non-empty list")
    _require(what, all(isinstance(item, str) for item in value), f"{key} must list strings")
    return list(value)


def _methods(what: str, entry: Mapping[str, Any]) -> frozenset[str]:
    """The configured methods, upper-case standard names or "*"; GET brings HEAD."""
    if "methods" not in entry:
        return frozenset({ANY_METHOD})
    methods = set(_strings(what, entry, "methods"))
    for method in sorted(methods - STANDARD_METHODS - {ANY_METHOD}):
        upper = method.upper() in STANDARD_METHODS
        hint = f" (methods are upper-case: {method.upper()!r})" if upper else ""
        _require(what, False, f"unknown method {method!r}{hint}")
    if "GET" in methods:
        # Frameworks answer HEAD with the GET handler: a rule on GET covers it.
        methods.add("HEAD")
    return frozenset(methods)


def _token_types(what: str, entry: Mapping[str, Any]) -> frozenset[TokenType]:
    """The configured token types; all types when the key is absent."""
    if "token_types" not in entry:
        return frozenset(TokenType)
    known = {t.value: t for t in TokenType}
    for value in _strings(what, entry, "token_types"):
        _require(what, value in known,
                 f"unknown token type {value!r} (known: {', '.join(known)})")
    return frozenset(known[value] for value in entry["token_types"])


def _pattern(what: str, entry: Mapping[str, Any]) -> PathPattern:
    """The entry's path pattern, compiled with its case setting."""
    path = entry["path"]
    _require(what, isinstance(path, str), "path must be a string")
    case_sensitive = _bool(what, entry, "case_sensitive")
    try:
        return PathPattern(path, case_sensitive=case_sensitive)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _limit(what: str, value: Any) -> int:
    """A request limit: a whole number of at least 1."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    _require(what, ok, f"limit must be a whole number of at least 1, not {value!r}")
    return cast(int, value)


def _window(what: str, value: Any) -> float:
    """A window length in seconds: a finite number above zero."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    _require(what, ok and math.isfinite(value) and value > 0,
             f"window_seconds must be a number above zero, not {value!r}")
    return float(value)
