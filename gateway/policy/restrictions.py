"""What one token is narrowed to: scopes, a network allow-list, its own rate limit.

All three are optional and only ever take permissions away. They are
checked when the token is created (a 422 names the field at fault),
compiled when its record is read from the store, and travel with the
record in the credential cache, so the data plane never needs another
store call to judge them. A token with none has ``restrictions`` None, so
the hot path tests one attribute.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from gateway.policy.errors import Unprocessable
from gateway.policy.networks import Networks, parse_networks
from gateway.policy.scopes import NO_GRANTS, Scopes, parse_scopes

MAX_LIMIT = 1_000_000_000
MAX_WINDOW_SECONDS = 86400.0
TOKEN_WINDOW = "token"
"""The policy name the token's own window is published under (``RateLimit-Policy``)."""


@dataclass(frozen=True, slots=True)
class TokenLimit:
    """A token's own window: at most ``limit`` requests in any ``window_seconds``.

    It applies on top of the user's window; a request must fit both.
    """

    limit: int
    window_seconds: float

    def to_json(self) -> dict[str, Any]:
        """The limit as the admin API shows it."""
        window: int | float = int(self.window_seconds) \
            if self.window_seconds.is_integer() else self.window_seconds
        return {"limit": self.limit, "window_seconds": window}


@dataclass(frozen=True, slots=True)
class Restrictions:
    """A token's restrictions; None in a field means that one does not apply."""

    scopes: Scopes | None = None
    networks: Networks | None = None
    rate_limit: TokenLimit | None = None

    def to_json(self) -> dict[str, Any]:
        """The listing's ``scopes``, ``allowed_networks`` and ``rate_limit`` fields."""
        return {
            "scopes": None if self.scopes is None else self.scopes.to_json(),
            "allowed_networks": None if self.networks is None else self.networks.to_json(),
            "rate_limit": None if self.rate_limit is None else self.rate_limit.to_json(),
        }

    def with_rate_limit(self, rate_limit: TokenLimit | None) -> Restrictions | None:
        """A copy with another own limit (None when nothing is left)."""
        return normalised(replace(self, rate_limit=rate_limit))


UNRESTRICTED_JSON: dict[str, Any] = Restrictions().to_json()


def normalised(restrictions: Restrictions) -> Restrictions | None:
    """None for restrictions that restrict nothing, so the hot path tests one attribute."""
    if restrictions.scopes is None and restrictions.networks is None \
            and restrictions.rate_limit is None:
        return None
    return restrictions


def parse_restrictions(
    *, scopes: object = None, allowed_networks: object = None, rate_limit: object = None,
    class_names: Iterable[str] | None,
) -> Restrictions | None:
    """Restrictions from the admin API's JSON (None fields: not restricted); 422 naming the field."""
    return normalised(Restrictions(
        scopes=None if scopes is None else parse_scopes(scopes, class_names=class_names),
        networks=None if allowed_networks is None else parse_networks(allowed_networks),
        rate_limit=None if rate_limit is None else parse_rate_limit(rate_limit),
    ))


def parse_rate_limit(value: object, *, field: str = "rate_limit") -> TokenLimit:
    """``{"limit": N, "window_seconds": S}``; 422 naming the field at fault."""
    if not isinstance(value, Mapping):
        raise Unprocessable(f'{field}: must be {{"limit": N, "window_seconds": S}}')
    unknown = sorted(str(k) for k in value if k not in ("limit", "window_seconds"))
    if unknown:
        raise Unprocessable(f"{field}: unknown key {unknown[0]!r}")
    limit = value.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise Unprocessable(f"{field}.limit: must be a whole number from 1 to {MAX_LIMIT}")
    window = value.get("window_seconds")
    if not isinstance(window, (int, float)) or isinstance(window, bool) \
            or not math.isfinite(window) or not 0 < window <= MAX_WINDOW_SECONDS \
            or round(window * 1_000_000) < 1:
        raise Unprocessable(f"{field}.window_seconds: must be a number of seconds above 0 "
                            f"and at most {MAX_WINDOW_SECONDS:g}")
    return TokenLimit(limit, float(window))


# -- the store's form: one JSON document per field, absent when not restricted --

def stored_fields(restrictions: Restrictions | None) -> dict[str, str]:
    """The record fields that keep ``restrictions`` (JSON), only those that are set."""
    if restrictions is None:
        return {}
    return {name: orjson.dumps(value).decode()
            for name, value in restrictions.to_json().items() if value is not None}


def from_stored(fields: Mapping[str, str]) -> Restrictions | None:
    """Restrictions read back from a record's fields.

    They were checked when written; if they cannot be read now, the token
    gets scopes that allow nothing (fail closed) rather than none at all.
    """
    raw = {name: fields.get(name) for name in UNRESTRICTED_JSON}
    if not any(raw.values()):
        return None
    try:
        docs = {name: orjson.loads(value) if value else None for name, value in raw.items()}
        return parse_restrictions(scopes=docs["scopes"], allowed_networks=docs["allowed_networks"],
                                  rate_limit=docs["rate_limit"], class_names=None)
    except (orjson.JSONDecodeError, Unprocessable):
        return Restrictions(scopes=NO_GRANTS)
