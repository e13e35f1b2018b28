"""Deciding whether a stored credential authenticates, and as whom."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.policy.authn import authenticate, cutoff_epoch
from gateway.policy.errors import Unauthenticated
from gateway.policy.model import (
    Credential,
    Role,
    TokenRecord,
    TokenType,
    User,
    WorkspaceSettings,
)

NOW = 1_800_000_000.0
CUTOFF = dt.date(2025, 2, 28)
ALICE = User("alice", Role.MEMBER, "acme", NOW - 1000)


def record(token_type: TokenType = TokenType.MEMBER, **kw: object) -> TokenRecord:
    fields: dict[str, object] = dict(
        token="tgm_x", type=token_type, name="n", owner="alice", workspace="acme",
        created_by="alice", created_at=NOW - 100, expires_at=NOW + 100, secret_hash="h",
    )
    fields.update(kw)
    return TokenRecord(**fields)  # type: ignore[arg-type]


def cred(rec: TokenRecord, owner: User | None = ALICE, member_tokens: bool = True) -> Credential:
    return Credential(rec, owner, WorkspaceSettings(member_tokens=member_tokens))


def check(c: Credential | None, ok: bool = True, now: float = NOW):  # type: ignore[no-untyped-def]
    return authenticate(c, secret_ok=ok, now=now, personal_cutoff=CUTOFF)


REFUSED = [
    ("unknown token", None, True, NOW, "unknown", "invalid credentials"),
    ("wrong secret", cred(record()), False, NOW, "bad_secret", "invalid credentials"),
    ("wrong secret on a revoked token tells nothing",
     cred(record(revoked_at=NOW - 1)), False, NOW, "bad_secret", "invalid credentials"),
    ("revoked", cred(record(revoked_at=NOW - 1)), True, NOW, "revoked", "revoked"),
    ("expired", cred(record(expires_at=NOW)), True, NOW, "expired", "expired"),
    ("member tokens switched off", cred(record(), member_tokens=False), True, NOW,
     "disabled_feature", "an admin must enable them"),
    ("personal after the cutoff", cred(record(TokenType.PERSONAL, expires_at=None)), True,
     cutoff_epoch(CUTOFF), "deprecated", "2025-02-28"),
    ("owner removed", cred(record(), owner=None), True, NOW, "revoked", "revoked"),
]


@pytest.mark.parametrize(("case", "c", "ok", "now", "reason", "detail"), REFUSED,
                         ids=[r[0] for r in REFUSED])
def test_refusals(case: str, c: Credential | None, ok: bool, now: float, reason: str,
                  detail: str) -> None:
    """Each refusal has its metrics reason and a detail only the secret's holder sees."""
    with pytest.raises(Unauthenticated) as info:
        check(c, ok, now)
    assert info.value.reason == reason
    assert detail in info.value.detail


def test_personal_token_detail_names_the_replacement() -> None:
    """After the cutoff, the detail names the date and the replacement token types."""
    with pytest.raises(Unauthenticated) as info:
        check(cred(record(TokenType.PERSONAL, expires_at=None)), now=cutoff_epoch(CUTOFF) + 1)
    assert "member or workspace" in info.value.detail


def test_personal_token_works_through_the_cutoff_day() -> None:
    """A personal token still works on the last second of the cutoff day."""
    identity = check(cred(record(TokenType.PERSONAL, expires_at=None)), now=cutoff_epoch(CUTOFF) - 1)
    assert identity.token_type is TokenType.PERSONAL and identity.role is Role.MEMBER


def test_workspace_token_acts_as_admin() -> None:
    """A workspace token carries admin access whatever its creator's role."""
    rec = record(TokenType.WORKSPACE, owner="workspace:acme")
    identity = check(cred(rec, owner=None))
    assert identity.role is Role.ADMIN and identity.user == "workspace:acme"


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER])
def test_member_token_acts_as_its_user_with_their_role(role: Role) -> None:
    """A member token acts as its owner, with the owner's role."""
    owner = User("alice", role, "acme", NOW)
    identity = check(cred(record(), owner=owner))
    assert (identity.user, identity.role, identity.workspace) == ("alice", role, "acme")


def test_token_without_expiry_never_expires() -> None:
    """A record with no expiry (imported personal) is active until revoked."""
    assert check(cred(record(TokenType.PERSONAL, expires_at=None)), now=0.0).token == "tgm_x"
