"""Everything the data plane decides per request, compiled once from settings.

Reloaded as a whole on SIGHUP: a new PolicySet is built and swapped in only
if it compiles, so a bad config never replaces a good one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.policy.rules import (
    DEFAULT_RULES,
    RouteClasses,
    RuleSet,
    compile_route_classes,
    compile_rules,
)
from gateway.policy.scope import WorkspaceScope


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Deny rules, rate-limit classes and workspace scoping."""

    rules: RuleSet
    classes: RouteClasses
    scope: WorkspaceScope | None

    @classmethod
    def from_settings(
        cls,
        *,
        deny: Sequence[Mapping[str, Any]] | None,
        classes: Sequence[Mapping[str, Any]],
        default_limit: int,
        default_window: float,
        workspace_path: str | None,
        workspace_path_except: Sequence[str] = (),
    ) -> PolicySet:
        """Compile; ``ValueError`` names the rule or class at fault.

        With no ``[[deny]]`` entries the shipped defaults apply; an explicit
        empty list (``deny = []``) switches them off.
        """
        return cls(
            rules=compile_rules(DEFAULT_RULES if deny is None else deny),
            classes=compile_route_classes(
                classes, default_limit=default_limit, default_window=default_window
            ),
            scope=(WorkspaceScope(workspace_path, exceptions=workspace_path_except)
                   if workspace_path else None),
        )
