"""Decide whether a stored credential authenticates a request, and as whom."""

from __future__ import annotations

import datetime as dt

from gateway.policy.authheader import INVALID
from gateway.policy.errors import Unauthenticated
from gateway.policy.model import Credential, Identity, Role, TokenStatus, TokenType


def authenticate(
    credential: Credential | None,
    *,
    secret_ok: bool,
    now: float,
    personal_cutoff: dt.date,
) -> Identity:
    """Return the identity a credential acts as, or raise 401 with the reason.

    The secret is checked first: until it matches, every failure reads the
    same, so the response never tells whether a token exists. Only a caller
    holding the right secret learns that it expired or was revoked.
    """
    if credential is None:
        raise Unauthenticated(INVALID, reason="unknown")
    if not secret_ok:
        raise Unauthenticated(INVALID, reason="bad_secret")
    record = credential.record
    status = record.status(now)
    if status is TokenStatus.REVOKED:
        raise Unauthenticated("this API token has been revoked", reason="revoked")
    if status is TokenStatus.EXPIRED:
        raise Unauthenticated("this API token has expired; create a new one", reason="expired")
    owner = credential.owner
    if record.type is TokenType.MEMBER and not credential.settings.member_tokens:
        raise Unauthenticated(
            "member API tokens are disabled for this workspace; an admin must enable them",
            reason="disabled_feature",
        )
    if record.type is TokenType.PERSONAL and now >= cutoff_epoch(personal_cutoff):
        raise Unauthenticated(
            f"personal API tokens were deprecated on {personal_cutoff.isoformat()}; "
            "create a member or workspace API token instead",
            reason="deprecated",
        )
    if record.type is TokenType.WORKSPACE:
        role = Role.ADMIN  # workspace tokens carry admin access, not their creator's
    elif owner is None:
        raise Unauthenticated("this API token has been revoked", reason="revoked")
    else:
        role = owner.role
    return Identity(
        user=record.owner,
        role=role,
        token_type=record.type,
        token=record.token,
        workspace=record.workspace,
        restrictions=record.restrictions,
    )


def cutoff_epoch(day: dt.date) -> float:
    """The first instant (UTC) after the cutoff day: tokens work through that day."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return end.timestamp()
