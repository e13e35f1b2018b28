"""Every method the upstream could route a request as, method overrides included.

Frameworks let a client send one method and have another one routed:
``X-HTTP-Method-Override`` and its siblings (Express method-override,
ASP.NET Core, Flask's documented recipe), a ``_method`` query parameter
(Symfony, Laravel) and a ``_method`` form field in a POST body (Rack,
Rails, Laravel, Symfony, ASP.NET Core, Express). A deny rule checked
against the request line alone would let ``GET`` + override ``POST`` reach
a handler denied for POST, so the rules are checked for every method the
upstream could end up routing.

The body is streamed, never read, so a form POST could carry any ``_method``:
it counts as *any* method. Names are read the way the most lenient framework
reads them: header case ignored and ``_`` taken as ``-`` (CGI/WSGI), query
names percent-decoded with PHP's mangling of ``.``, `` `` and ``[`` into
``_``, values in any case.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol
from urllib.parse import unquote_plus

from gateway.policy.rules import ANY_METHOD

OVERRIDE_HEADERS = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
"""Method-override headers, lower case with '-'; stripped before the upstream by default."""
OVERRIDE_PARAM = "_method"
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

# A header name is normalised only if its length could match.
_LENGTHS = frozenset(len(name) for name in OVERRIDE_HEADERS)
_PHP_MANGLED = str.maketrans({".": "_", " ": "_", "[": "_"})


def is_override_header(name: str) -> bool:
    """True for any spelling of a method-override header ('_' counts as '-')."""
    return len(name) in _LENGTHS and name.lower().replace("_", "-") in OVERRIDE_HEADERS


class Headers(Protocol):
    """Request headers as a multidict holds them (case-insensitive ``getall``)."""

    def __iter__(self) -> Iterator[str]: ...

    def getall(self, key: str, default: list[str], /) -> list[str]: ...


def candidate_methods(
    method: str,
    headers: Headers,
    *,
    raw_query: str = "",
    path: str = "",
    has_body: bool = False,
) -> tuple[str, ...] | None:
    """The request method and every override of it, or None when nothing overrides it.

    ``ANY_METHOD`` among the result means "could be any method" (a form POST).
    ``path`` is the normalised path, whose ``;params`` are read like a query.
    """
    # Hot path: one substring search over all the names (every override
    # header's name contains "method"); each name is looked at only on a hit.
    named = [name for name in headers if is_override_header(name)] \
        if "method" in " ".join(list(headers)).lower() else []
    if not named and not raw_query and ";" not in path and method != "POST":
        return None
    found: list[str] = []
    for name in dict.fromkeys(named):
        for value in headers.getall(name, []):
            # Frameworks differ on which of several values wins: check them all.
            found.extend(_values(value.split(",")))
    if raw_query and ("%" in raw_query or "method" in raw_query.lower()):
        found.extend(_param_values(raw_query))
    if ";" in path and "method" in path.lower():
        for segment in path.split("/"):
            if ";" in segment:
                found.extend(_param_values(segment.partition(";")[2]))
    if method == "POST" and _may_be_form(headers.getall("Content-Type", []), has_body):
        found.append(ANY_METHOD)
    if not found:
        return None
    return tuple(dict.fromkeys((method, *found)))


def _values(values: Iterable[str]) -> list[str]:
    """Override values as a framework upper-cases them; empty ones are ignored."""
    return [upper for value in values if (upper := value.strip().upper())]


def _param_values(params: str) -> list[str]:
    """The values of every ``_method`` parameter in a query (``&`` or ``;`` separated)."""
    values: list[str] = []
    for pair in params.replace(";", "&").split("&"):
        name, _, value = pair.partition("=")
        key = unquote_plus(name).strip().lower().translate(_PHP_MANGLED)
        if key == OVERRIDE_PARAM:
            values.append(unquote_plus(value))
    return _values(values)


def _may_be_form(content_types: Sequence[str], has_body: bool) -> bool:
    """Could a framework parse this POST body as form fields?"""
    if not content_types:
        # Rack parses a POST without Content-Type as a form.
        return has_body
    return any(value.partition(";")[0].strip().lower() in FORM_TYPES for value in content_types)
