"""``tokengate trusted-auth enable|disable|show --workspace WS``, acting as the operator."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gateway.lifecycle import Lifecycle
from gateway.policy.permissions import Actor
from gateway.trusted.service import KeyStatus, TrustedAuth

PrintFn = Callable[[argparse.Namespace, Any, str], None]


def _text(action: str, status: KeyStatus) -> str:
    if status.secret_key is None:
        verb = "disabled" if action == "disable" else "is disabled"
        return f"trusted authentication {verb} for workspace {status.workspace}"
    lead = ("enabled" if status.created else "was already enabled") if action == "enable" \
        else "is enabled"
    return (f"trusted authentication {lead} for workspace {status.workspace}\n"
            f"secret_key: {status.secret_key}\n"
            "(keep it on your backend; it mints tokens for any user of the workspace)")


async def trusted_auth_command(lc: Lifecycle, args: argparse.Namespace,
                               print_fn: PrintFn) -> int:
    """Run one trusted-auth subcommand against the store; the exit status."""
    service = TrustedAuth(lifecycle=lc)
    operator = Actor.operator()
    if args.action == "enable":
        status = await service.enable(operator, args.workspace)
    elif args.action == "disable":
        status = await service.disable(operator, args.workspace)
    else:
        status = await service.show(operator, args.workspace)
    print_fn(args, status.to_json(), _text(args.action, status))
    return 0
