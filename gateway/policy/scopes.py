"""Token scopes: grants that narrow what one workspace or member token may do.

A token without scopes may do what its type and role allow. A token with
scopes may do only what one of its grants allows, on top of everything else:
the deny rules and the workspace scope still apply, and a member token still
acts with its user's role, so scopes never add a permission.

A grant is one of

* ``"read-only"``: GET, HEAD and OPTIONS on every path;
* ``{"methods": [...], "path": "<pattern>"}``: those methods (absent: any) on
  paths the pattern matches, in the deny rules' own pattern language
  (:mod:`gateway.policy.patterns`), matched against the same normalised path;
* ``{"class": "<name>"}`` (optionally with ``methods``): requests the rate
  limiter files under that route class.

Methods are read as the deny rules read them, but the other way round,
since a grant allows where a rule refuses: GET covers HEAD (frameworks answer
HEAD with the GET handler); every method the upstream could route (a
method override) must be allowed; and a method that could be routed as
anything (a non-standard one such as "post", or a form POST whose body may
carry ``_method``) is allowed only by a grant for every method (``"*"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.errors import Unprocessable
from gateway.policy.patterns import PathPattern, split_path
from gateway.policy.rules import ANY_METHOD, STANDARD_METHODS, RouteClasses

READ_ONLY = "read-only"
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_GRANTS = 32
MAX_PATTERN = 512
_GRANT_KEYS = frozenset({"methods", "path", "class"})
_SHAPE = 'a grant is "read-only", {"methods": [...], "path": "/..."} or {"class": "<name>"}'


@dataclass(frozen=True, slots=True)
class Grant:
    """One thing a scoped token may do. ``methods`` holds ``"*"`` for any method."""

    methods: frozenset[str]
    pattern: PathPattern | None = None  # None with no class: every path (read-only)
    route_class: str | None = None
    read_only: bool = False
    # Derived once: the standard methods this grant allows (GET brings HEAD), and
    # whether it allows a method that could be any.
    _allowed: frozenset[str] = field(init=False, repr=False, compare=False)
    _any: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        any_method = ANY_METHOD in self.methods
        allowed = STANDARD_METHODS if any_method else self.methods | (
            {"HEAD"} if "GET" in self.methods else set())
        object.__setattr__(self, "_allowed", frozenset(allowed))
        object.__setattr__(self, "_any", any_method)

    def allows_method(self, method: str | None) -> bool:
        """Does this grant cover ``method`` (None: a method that could be any)?"""
        return self._any if method is None else method in self._allowed

    def covers(self, method: str | None, path: str, segments: Sequence[str],
               classes: RouteClasses) -> bool:
        """Does this grant's path (or class) cover the request, for a method it allows?"""
        if self.route_class is not None:
            # A method that could be any must land in the class whatever it is.
            candidates = STANDARD_METHODS if method is None else (method,)
            return all(classes.classify(m, path).name == self.route_class for m in candidates)
        return self.pattern is None or self.pattern.match_segments(segments) is not None

    def to_json(self) -> str | dict[str, Any]:
        """The grant as the admin API shows (and the store keeps) it."""
        if self.read_only:
            return READ_ONLY
        doc: dict[str, Any] = {"methods": sorted(self.methods)}
        if self.route_class is not None:
            doc["class"] = self.route_class
        elif self.pattern is not None:
            doc["path"] = self.pattern.pattern
        return doc


READ_ONLY_GRANT = Grant(READ_ONLY_METHODS, read_only=True)


@dataclass(frozen=True, slots=True)
class Scopes:
    """A token's grants; a request passes if each method it could be routed as has one."""

    grants: tuple[Grant, ...]

    def allows(self, methods: Iterable[str], path: str, classes: RouteClasses) -> bool:
        """True if some grant allows every one of ``methods`` on the normalised ``path``."""
        segments: Sequence[str] = ()
        split = False
        for method in methods:
            key = method if method in STANDARD_METHODS else None  # "*" and "post" alike
            for grant in self.grants:
                if not grant.allows_method(key):
                    continue
                if grant.pattern is not None and not split:  # split only when a pattern asks
                    segments, split = split_path(path), True
                if grant.covers(key, path, segments, classes):
                    break
            else:
                return False
        return True

    def to_json(self) -> list[str | dict[str, Any]]:
        """The grants as the admin API shows them."""
        return [grant.to_json() for grant in self.grants]


NO_GRANTS = Scopes(())
"""Scopes that allow nothing: what a token whose stored scopes cannot be read gets."""


def parse_scopes(value: object, *, class_names: Iterable[str] | None,
                 field: str = "scopes") -> Scopes:
    """Scopes from the admin API's JSON; 422 naming the field at fault.

    ``class_names`` are the configured rate-limit classes a class grant may
    name; None skips that check (scopes read back from the store, whose
    classes may have changed since: a grant for a class that is gone
    matches nothing).
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise Unprocessable(f"{field}: must be a list of grants ({_SHAPE})")
    if not value:
        raise Unprocessable(f"{field}: must list at least one grant (leave it out for none)")
    if len(value) > MAX_GRANTS:
        raise Unprocessable(f"{field}: at most {MAX_GRANTS} grants")
    known = None if class_names is None else frozenset(class_names)
    grants = [_grant(f"{field}[{i}]", item, known) for i, item in enumerate(value)]
    return Scopes(tuple(dict.fromkeys(grants)))


def _grant(where: str, item: object, known: frozenset[str] | None) -> Grant:
    if item == READ_ONLY:
        return READ_ONLY_GRANT
    if not isinstance(item, Mapping):
        raise Unprocessable(f"{where}: {_SHAPE}")
    unknown = sorted(str(k) for k in item if k not in _GRANT_KEYS)
    if unknown:
        raise Unprocessable(f"{where}: unknown key {unknown[0]!r} ({_SHAPE})")
    if ("path" in item) == ("class" in item):
        raise Unprocessable(f"{where}: give either path or class ({_SHAPE})")
    methods = _methods(f"{where}.methods", item["methods"]) if "methods" in item \
        else frozenset({ANY_METHOD})
    if "class" in item:
        name = item["class"]
        if not isinstance(name, str) or not name:
            raise Unprocessable(f"{where}.class: must be the name of a rate-limit class")
        if known is not None and name not in known:
            raise Unprocessable(f"{where}.class: no rate-limit class {name!r} "
                                f"(configured: {', '.join(sorted(known))})")
        return Grant(methods, route_class=name)
    return Grant(methods, pattern=_pattern(f"{where}.path", item["path"]))


def _methods(where: str, value: object) -> frozenset[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise Unprocessable(f"{where}: must be a non-empty list of methods (or [\"*\"])")
    methods: set[str] = set()
    for method in value:
        if not isinstance(method, str):
            raise Unprocessable(f"{where}: must list method names (strings)")
        if method not in STANDARD_METHODS and method != ANY_METHOD:
            hint = f" (methods are upper-case: {method.upper()!r})" \
                if method.upper() in STANDARD_METHODS else ""
            raise Unprocessable(f"{where}: unknown method {method!r}{hint}")
        methods.add(method)
    return frozenset({ANY_METHOD}) if ANY_METHOD in methods else frozenset(methods)


def _pattern(where: str, value: object) -> PathPattern:
    if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
        raise Unprocessable(f"{where}: must be a path pattern of 1-{MAX_PATTERN} characters")
    try:
        return PathPattern(value)
    except ValueError as exc:
        raise Unprocessable(f"{where}: {exc}") from None


def grant_from_text(text: str) -> str | dict[str, Any]:
    """A grant written on one line, as the CLI and the admin page take it.

    ``read-only``; ``class:NAME`` (optionally ``METHODS class:NAME``);
    ``PATH`` (any method) or ``METHODS PATH``, methods comma-separated:
    ``GET,HEAD /api/{workspace}/reports/**``. The result is checked by
    :func:`parse_scopes` like any other.
    """
    words = text.split()
    if words == [READ_ONLY]:
        return READ_ONLY
    if len(words) not in (1, 2):
        raise Unprocessable(f"scopes: {text!r} is not a grant (read-only, class:NAME, "
                            "PATH or METHODS PATH)")
    target = words[-1]
    grant: dict[str, Any] = ({"class": target.removeprefix("class:")}
                             if target.startswith("class:") else {"path": target})
    if len(words) == 2:
        grant["methods"] = [m for m in words[0].split(",") if m]
    return grant
