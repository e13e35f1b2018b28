"""``tokengate token`` restrictions and rolling: create options, ``roll``, ``rate-limit``.

Kept beside ``cli.py`` (which registers and dispatches them) so that the
command file stays one screen per concept. Every value is checked by the
same policy code as the admin API's, so the CLI's errors name the same
fields.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gateway.lifecycle import Lifecycle
from gateway.policy.errors import Unprocessable
from gateway.policy.permissions import Actor
from gateway.policy.rolling import MAX_GRACE_SECONDS
from gateway.policy.scopes import grant_from_text

PrintFn = Callable[[argparse.Namespace, Any, str], None]
RATE_LIMIT_HELP = "N/SECONDS, e.g. 100/60: at most N requests in any SECONDS, on top of the user's"


def add_create_options(create: argparse.ArgumentParser) -> None:
    """``token create --scope G ... --allow-network CIDR ... --rate-limit N/S``."""
    create.add_argument(
        "--scope", action="append", metavar="GRANT", dest="scopes",
        help="allow only this (repeatable): read-only, 'METHODS PATH' such as "
             "'GET,HEAD /api/{workspace}/reports/**', a PATH alone (any method), or class:NAME")
    create.add_argument("--allow-network", action="append", metavar="CIDR", dest="networks",
                        help="allow use only from this network (repeatable; IPv4 or IPv6)")
    create.add_argument("--rate-limit", metavar="N/SECONDS", help=RATE_LIMIT_HELP)


def add_commands(tsub: argparse._SubParsersAction,  # type: ignore[type-arg]
                 common: Callable[[argparse.ArgumentParser], None],
                 int_type: Callable[[int, int], Callable[[str], int]]) -> None:
    """``token roll TOKEN [--grace-seconds N]`` and ``token rate-limit TOKEN N/SECONDS|off``."""
    roll = tsub.add_parser("roll", help="a new secret for a token; the old one works for a while",
                           description="Roll a token's secret: print a new one (shown once); the "
                                       "old one keeps working for the grace period.")
    roll.add_argument("token")
    roll.add_argument("--grace-seconds", type=int_type(0, MAX_GRACE_SECONDS), metavar="N",
                      help="how long the old secret keeps working (default 86400, a day; "
                           "0 ends it now; at most 604800)")
    common(roll)
    limit = tsub.add_parser("rate-limit", help="set or remove a token's own rate limit")
    limit.add_argument("token")
    limit.add_argument("limit", metavar="N/SECONDS|off", help=RATE_LIMIT_HELP + "; off removes it")
    common(limit)


def create_restrictions(args: argparse.Namespace) -> dict[str, Any]:
    """The create options as the lifecycle's keyword arguments (None when not given)."""
    scopes = getattr(args, "scopes", None)
    return {
        "scopes": None if scopes is None else [grant_from_text(s) for s in scopes],
        "allowed_networks": getattr(args, "networks", None),
        "rate_limit": _rate_limit(args.rate_limit) if getattr(args, "rate_limit", None) else None,
    }


def _rate_limit(text: str) -> dict[str, Any]:
    count, _, seconds = text.partition("/")
    try:
        return {"limit": int(count), "window_seconds": float(seconds)}
    except ValueError:
        raise Unprocessable(f"rate_limit: {text!r} is not N/SECONDS (such as 100/60)") from None


async def token_command(lc: Lifecycle, args: argparse.Namespace, print_fn: PrintFn) -> int:
    """Run ``token roll`` or ``token rate-limit`` as the operator; the exit status."""
    operator = Actor.operator()
    now = lc.clock()
    if args.action == "roll":
        new = await lc.roll_token(operator, args.token, args.grace_seconds)
        doc = {**new.record.to_json(now), "secret": new.secret}
        print_fn(args, doc, f"token:  {new.record.token}\nsecret: {new.secret}\n"
                 f"(the secret is shown only this once)\n"
                 f"the old secret works until {doc['previous_secret_expires_at']}")
        return 0
    value = None if args.limit == "off" else _rate_limit(args.limit)
    record = await lc.set_rate_limit(operator, args.token, value)
    doc = record.to_json(now)
    limit = doc["rate_limit"]
    text = (f"{record.token}: at most {limit['limit']} requests per {limit['window_seconds']} s"
            if limit else f"{record.token}: no rate limit of its own")
    print_fn(args, doc, text)
    return 0
