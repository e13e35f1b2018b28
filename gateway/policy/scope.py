"""Workspace scope: where a path names a workspace, so a token reaches only its own.

Two API shapes share the ``/api`` prefix. A Mode-style API names the
workspace in the path (``/api/{workspace}/reports``); ThoughtSpot's REST API
v2 (``/api/rest/2.0/...``) names none: the org comes with the token, and the
upstream reads it from ``X-Tokengate-Workspace``. ``workspace_path`` says
where a path names a workspace; ``workspace_path_except`` lists the paths
that match it without naming one (by default ``/api/rest/2.0/**``).

A Mode workspace literally named ``rest`` keeps its scope on every path
but the excepted ones: ``/api/rest/reports`` still names workspace "rest".
The default exception is as narrow as ThoughtSpot's prefix, and Mode-style
APIs serve no ``/api/{workspace}/2.0/...`` resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote

from gateway.policy.patterns import PathPattern, split_path

DEFAULT_WORKSPACE_PATH = "/api/{workspace}/**"


def _compile(what: str, pattern: str, case_sensitive: bool) -> PathPattern:
    # Always ValueError (PathPattern's, for a non-string too): the config
    # loader turns it into exit 2 with this message.
    try:
        return PathPattern(pattern, case_sensitive=case_sensitive)
    except ValueError as exc:
        raise ValueError(f"{what} {pattern!r}: {exc}") from None


class WorkspaceScope:
    """Where a path names a workspace, so a token cannot reach another one's.

    ``case_sensitive`` applies to the patterns' literal segments; the
    workspace itself is always compared exactly.
    """

    __slots__ = ("exceptions", "pattern")

    def __init__(self, pattern: str = DEFAULT_WORKSPACE_PATH, *,
                 exceptions: Sequence[str] = (), case_sensitive: bool = False) -> None:
        self.pattern = _compile("workspace_path", pattern, case_sensitive)
        if "workspace" not in self.pattern.params:
            raise ValueError(f"workspace_path {pattern!r}: must contain '{{workspace}}'")
        compiled = []
        for entry in (exceptions,) if isinstance(exceptions, str) else exceptions:
            exception = _compile("workspace_path_except", entry, case_sensitive)
            if "workspace" in exception.params:
                raise ValueError(f"workspace_path_except {entry!r}: names a workspace, "
                                 "so it cannot be an exception; leave out '{workspace}'")
            compiled.append(exception)
        self.exceptions: tuple[PathPattern, ...] = tuple(compiled)

    def workspace_of(self, path: str) -> str | None:
        """The workspace a normalised path names (percent-decoded), or None."""
        segments = split_path(path)
        params = self.pattern.match_segments(segments)
        if params is None:
            return None
        if any(e.match_segments(segments) is not None for e in self.exceptions):
            return None
        # Decoded as the upstream reads it, but ";params" kept: "ws;x" is not
        # "ws", so such a path is refused rather than guessed at.
        return unquote(params["workspace"])

    def permits(self, path: str, workspace: str) -> bool:
        """True unless the normalised path names a workspace other than ``workspace``."""
        named = self.workspace_of(path)
        if named is None:
            return True
        # Exact: workspace names are one case (folded when created), so "Acme"
        # in a path is not "acme"'s, whatever the upstream makes of it.
        return named == workspace
