"""Records to Redis hash fields and back: the one place that knows their shapes.

Every Redis module of the store reads and writes records through these, so a
field added to a record is added here once (and to ``_record_fields`` /
``_record`` as a pair).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.policy.model import (
    AuditEvent,
    Role,
    TokenRecord,
    TokenType,
    User,
    WorkspaceSettings,
)
from gateway.policy.restrictions import from_stored, stored_fields
from gateway.policy.trusted import BearerRecord, TrustedKey


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[Any]) -> dict[str, str]:
    """A flat ``[field, value, ...]`` reply (as scripts return hashes) as a dict."""
    return {_s(flat[i]) or "": _s(flat[i + 1]) or "" for i in range(0, len(flat), 2)}


def _pairs_dict(h: Mapping[Any, Any]) -> dict[str, str]:
    return {_s(k) or "": _s(v) or "" for k, v in h.items()}


def _flat(fields: Mapping[str, str]) -> list[str]:
    """Hash fields as script arguments: ``[field, value, ...]``."""
    return [x for kv in fields.items() for x in kv]


def _f(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _record(token: str, h: Mapping[str, str]) -> TokenRecord:
    return TokenRecord(
        token=token,
        type=TokenType(h["type"]),
        name=h.get("name", ""),
        owner=h["owner"],
        workspace=h["workspace"],
        created_by=h.get("created_by", ""),
        created_at=float(h["created_at"]),
        expires_at=_f(h.get("expires_at")),
        secret_hash=h.get("secret_hash", ""),
        last_used_at=_f(h.get("last_used_at")),
        revoked_at=_f(h.get("revoked_at")),
        restrictions=from_stored(h),
        previous_secret_hash=h.get("previous_secret_hash", ""),
        previous_secret_until=_f(h.get("previous_secret_until")),
        rolled_at=_f(h.get("rolled_at")),
    )


def _record_fields(r: TokenRecord) -> dict[str, str]:
    fields = {
        "type": r.type.value,
        "name": r.name,
        "owner": r.owner,
        "workspace": r.workspace,
        "created_by": r.created_by,
        "created_at": repr(r.created_at),
        "secret_hash": r.secret_hash,
    }
    for key in ("expires_at", "last_used_at", "revoked_at", "previous_secret_until", "rolled_at"):
        value = getattr(r, key)
        if value is not None:
            fields[key] = repr(value)
    if r.previous_secret_hash:
        fields["previous_secret_hash"] = r.previous_secret_hash
    fields.update(stored_fields(r.restrictions))
    return fields


def _user(username: str, h: Mapping[str, str]) -> User:
    return User(username, Role(h["role"]), h["workspace"], float(h["created_at"]),
                h.get("generation", ""))


def _user_fields(user: User) -> dict[str, str]:
    return {"username": user.username, "role": user.role.value, "workspace": user.workspace,
            "created_at": repr(user.created_at), "generation": user.generation}


def _settings(h: Mapping[str, str]) -> WorkspaceSettings:
    def opt_int(key: str) -> int | None:
        v = h.get(key)
        return int(v) if v else None

    return WorkspaceSettings(
        member_tokens=h.get("member_tokens") == "1",
        default_expiry_days=opt_int("default_expiry_days"),
        max_expiry_days=opt_int("max_expiry_days"),
    )


def _settings_fields(settings: WorkspaceSettings) -> dict[str, str]:
    return {
        "member_tokens": "1" if settings.member_tokens else "0",
        "default_expiry_days": str(settings.default_expiry_days or ""),
        "max_expiry_days": str(settings.max_expiry_days or ""),
    }


def _event(raw: bytes | str) -> AuditEvent:
    d = orjson.loads(raw)
    return AuditEvent(d["at"], d["event"], d["actor"], d["subject"], d["workspace"],
                      d.get("detail") or {})


def _event_doc(event: AuditEvent) -> bytes:
    return orjson.dumps({"at": event.at, "event": event.event, "actor": event.actor,
                         "subject": event.subject, "workspace": event.workspace,
                         "detail": event.detail})


def _trusted_key(workspace: str, h: Mapping[str, str]) -> TrustedKey:
    return TrustedKey(workspace=workspace, generation=h["generation"], key_encrypted=h["key"],
                      enabled_at=float(h["enabled_at"]), enabled_by=h.get("enabled_by", ""),
                      org_id=int(h["org_id"]) if h.get("org_id") else None)


def _trusted_fields(key: TrustedKey) -> dict[str, str]:
    """A new key's fields (its org id is given separately: it may move on its own)."""
    return {"generation": key.generation, "key": key.key_encrypted,
            "enabled_at": repr(key.enabled_at), "enabled_by": key.enabled_by}


def _bearer(token_hash: str, h: Mapping[str, str]) -> BearerRecord:
    return BearerRecord(
        token_hash=token_hash, user=h["user"], workspace=h["workspace"],
        generation=h["generation"], created_at=float(h["created_at"]),
        expires_at=float(h["expires_at"]), revoked_at=_f(h.get("revoked_at")),
        user_generation=h.get("user_generation", ""),
    )


def _bearer_fields(record: BearerRecord) -> dict[str, str]:
    return {"user": record.user, "workspace": record.workspace,
            "generation": record.generation, "created_at": repr(record.created_at),
            "expires_at": repr(record.expires_at), "user_generation": record.user_generation}


def _invalidation(kind: str, key: str, at: float) -> bytes:
    """The pub/sub message every process's listener decodes (see ``redis_pubsub``)."""
    return orjson.dumps({"kind": kind, "key": key, "at": at})
