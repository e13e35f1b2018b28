"""``tokengate trusted-auth enable|disable|show --workspace WS [--org-id N]``, as the operator."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gateway.lifecycle import Lifecycle
from gateway.policy.errors import Unprocessable
from gateway.policy.permissions import Actor
from gateway.policy.tokenrequests import org_id_number
from gateway.trusted.service import KeyStatus, TrustedAuth

PrintFn = Callable[[argparse.Namespace, Any, str], None]


def _text(action: str, status: KeyStatus) -> str:
    if status.secret_key is None:
        verb = "disabled" if action == "disable" else "is disabled"
        return f"trusted authentication {verb} for workspace {status.workspace}"
    lead = ("enabled" if status.created else "was already enabled") if action == "enable" \
        else "is enabled"
    org = f" (org id {status.org_id})" if status.org_id is not None else ""
    return (f"trusted authentication {lead} for workspace {status.workspace}{org}\n"
            f"secret_key: {status.secret_key}\n"
            "(keep it on your backend; it mints tokens for any user of the workspace)")


async def trusted_auth_command(lc: Lifecycle, args: argparse.Namespace,
                               print_fn: PrintFn) -> int:
    """Run one trusted-auth subcommand against the store; the exit status."""
    service = TrustedAuth(lifecycle=lc)
    operator = Actor.operator()
    org_id = getattr(args, "org_id", None)
    if org_id is not None and args.action != "enable":
        raise Unprocessable("--org-id goes with enable (disable drops the org id)")
    if args.action == "enable":
        org = None if org_id is None else org_id_number(org_id, "--org-id")
        status = await service.enable(operator, args.workspace, org)
    elif args.action == "disable":
        status = await service.disable(operator, args.workspace)
    else:
        status = await service.show(operator, args.workspace)
    print_fn(args, status.to_json(), _text(args.action, status))
    return 0
