"""``tokengate store migrate``: convert a store of key layout 1 to layout 2.

Crash-safe and safe to re-run, by its order:

1. copy: every layout-1 record is written under its layout-2 name (a whole
   key replaced at once, so a second run writes the same keys again), with
   the indexes and directory entries layout 2 adds. Nothing of layout 1 is
   changed, and ``serve`` keeps refusing the store (it still has layout-1
   keys and no layout recorded);
2. switch: the layout version is recorded. From here on the store is
   layout 2, and a run again only does step 3;
3. clean: the layout-1 keys are deleted.

Gateways of the old version write layout 1 while they run, so the command
refuses to start while any process is subscribed to the invalidation
channel (``--force`` overrides: for a subscriber known to be something else).
Rate-limit windows, bearer tokens and the key check keep their names.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson

from gateway.config import Settings
from gateway.policy.model import AuditEvent
from gateway.store.base import AUDIT_MAX, newest_first
from gateway.store.cluster_client import ClusterClient
from gateway.store.codec import _event, _event_doc, _pairs_dict, _s
from gateway.store.layout import VERSION, LegacyLayout, StoreMismatch, new_claim
from gateway.store.resp import pack

if TYPE_CHECKING:
    from gateway.store.redis import RedisStore


@dataclass
class Migration:
    """What a run did."""

    before: str  # the layout found: "1", "2" or "none" (an empty store)
    users: int = 0
    tokens: int = 0
    settings: int = 0
    trusted_keys: int = 0
    org_ids: int = 0
    audit_events: int = 0
    skipped: int = 0  # layout-1 records too broken to copy (a user without a role)
    removed: int = 0  # layout-1 keys deleted

    def summary(self) -> str:
        """One line for the operator."""
        if self.before == VERSION and not self.removed:
            return f"the store already has key layout {VERSION}: nothing to migrate"
        if self.before == VERSION:
            return (f"the store already has key layout {VERSION}; removed {self.removed} "
                    "key(s) left by layout 1")
        if self.before == "none":
            return f"the store was empty; it now has key layout {VERSION}"
        skipped = f", skipped {self.skipped} broken record(s)" if self.skipped else ""
        return (f"migrated key layout 1 to {VERSION}: {self.users} user(s), {self.tokens} "
                f"token(s), {self.settings} workspace setting(s), {self.trusted_keys} "
                f"trusted-auth key(s) ({self.org_ids} org id(s)), {self.audit_events} audit "
                f"event(s){skipped}; removed {self.removed} layout-1 key(s)")


class Migrator:
    """One migration run over an open store."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.client = store.client
        self.new = store.keys
        self.old = LegacyLayout(store.prefix)

    async def run(self, *, force: bool = False) -> Migration:
        """Copy, switch and clean (or only clean, once switched)."""
        await self.store._check_kind()
        recorded = _s(await self.client.get(self.new.version))
        if recorded == VERSION:
            report = Migration(VERSION)
        elif recorded is not None:
            raise StoreMismatch(f"the store has key layout {recorded}, which this "
                                "tokengate cannot migrate")
        else:
            report = Migration("1" if await self.store._has_legacy_keys() else "none")
            if report.before == "1" and not force:
                await self._refuse_while_subscribed()
            await self._copy(report)
            await self.client.set(self.new.version, VERSION)
        report.removed = await self._clean()
        return report

    async def _refuse_while_subscribed(self) -> None:
        count = await self._subscribers()
        if count:
            raise StoreMismatch(
                f"{count} process(es) are subscribed to {self.new.channel}: stop every "
                "gateway before migrating (--force if that subscriber is something else)")

    async def _subscribers(self) -> int:
        channel = self.new.channel
        if isinstance(self.client, ClusterClient):
            router, total = self.client.router, 0
            for node in router.nodes():
                reply = await router.connection(node).call(pack("PUBSUB", "NUMSUB", channel))
                total += int(reply[1])
            return total
        return sum(int(n) for _, n in await self.client.pubsub_numsub(channel))

    async def _keys(self, pattern: str) -> list[str]:
        return sorted({_s(k) or "" async for k in self.client.scan_iter(match=pattern,
                                                                          count=1000)})

    async def _replace(self, key: str, kind: str, items: list[str | bytes]) -> None:
        await self.store._scripts["migrate_replace"](keys=[key], args=[kind, *items])

    async def _hash(self, key: str) -> dict[str, str]:
        return _pairs_dict(await self.client.hgetall(key))

    async def _copy(self, report: Migration) -> None:
        workspaces = {_s(w) or "" for w in await self.client.smembers(self.new.workspaces)}
        workspaces |= {_s(w) or "" for w in await self.client.smembers(
            self.old.audit_workspaces)}
        workspaces |= await self._copy_users(report)
        workspaces |= await self._copy_tokens(report)
        workspaces |= await self._copy_workspace_hashes(report)
        workspaces |= await self._copy_audit(report, workspaces)
        workspaces.discard("")
        if workspaces:
            await self.client.sadd(self.new.workspaces, *sorted(workspaces))

    async def _copy_users(self, report: Migration) -> set[str]:
        seen: set[str] = set()
        start = len(self.old.user(""))
        for key in await self._keys(self.old.user("*")):
            name, h = key[start:], await self._hash(key)
            if "role" not in h or "workspace" not in h:
                report.skipped += 1  # half-made by the old two-step add: never a user
                continue
            ws, claim = h["workspace"], new_claim()
            await self._replace(self.new.user(ws, name), "hash",
                                _flat({**h, "username": name, "claim": claim}))
            await self.client.sadd(self.new.ws(ws, "users"), name)
            await self._replace(self.new.user_dir(name), "hash",
                                _flat({"workspace": ws, "claim": claim, "at": "0"}))
            seen.add(ws)
            report.users += 1
        return seen

    async def _copy_tokens(self, report: Migration) -> set[str]:
        seen: set[str] = set()
        for key in await self._keys(self.old.token("*")):
            token = key[key.index("{") + 1:key.rindex("}")]
            h = await self._hash(key)
            if not {"type", "owner", "workspace", "created_at"} <= h.keys():
                report.skipped += 1
                continue
            ws, owner = h["workspace"], h["owner"]
            await self._replace(self.new.token(ws, token), "hash", _flat(h))
            await self.client.zadd(self.new.ws(ws, "tokens"), {token: float(h["created_at"])})
            await self.client.sadd(self.new.owner_tokens(ws, owner), token)
            await self._replace(self.new.token_dir(token), "hash",
                                _flat({"workspace": ws, "owner": owner, "claim": "1", "at": "0"}))
            seen.add(ws)
            report.tokens += 1
        return seen

    async def _copy_workspace_hashes(self, report: Migration) -> set[str]:
        seen: set[str] = set()
        for what in ("settings", "trusted"):
            start, end = len(self.old.ws("", "")) - 1, len(what) + 1
            for key in await self._keys(self.old.ws("*", what)):
                ws, h = key[start:-end], await self._hash(key)
                if not h:
                    continue
                if what == "trusted":
                    h = await self._with_org_claim(ws, h, report)
                    report.trusted_keys += 1
                else:
                    report.settings += 1
                await self._replace(self.new.ws(ws, what), "hash", _flat(h))
                seen.add(ws)
        return seen

    async def _with_org_claim(self, ws: str, h: dict[str, str],
                              report: Migration) -> dict[str, str]:
        """The key's fields, its org id's directory entry written (if layout 1 gave
        the org id to this workspace) with a claim both record."""
        org = h.get("org_id", "")
        if not org:
            return h
        holder = _s(await self.client.get(self.old.org_dir(int(org))))
        if holder not in (None, ws):
            return {k: v for k, v in h.items() if k != "org_id"}  # another's: not this one's
        claim = h.get("org_claim") or new_claim()
        await self._replace(self.new.org_dir(int(org)), "hash",
                            _flat({"workspace": ws, "claim": claim, "at": "0"}))
        report.org_ids += 1
        return {**h, "org_claim": claim}

    async def _copy_audit(self, report: Migration, workspaces: set[str]) -> set[str]:
        """Per-workspace lists and the security list, each merged (by time) with the
        events of the single list of older versions."""
        single: dict[str, list[AuditEvent]] = {}
        for raw in await self.client.lrange(self.old.single_audit, 0, AUDIT_MAX - 1):
            event = _event(raw)
            single.setdefault(event.workspace, []).append(event)
        start = len(self.old.ws("", "")) - 1
        lists = {key[start:-len(":audit")] for key in await self._keys(self.old.ws("*", "audit"))}
        for ws in sorted(lists | set(single) | {""}):
            old_key = self.old.ws(ws, "audit") if ws else self.old.security_audit
            kept = [_event(raw) for raw in await self.client.lrange(old_key, 0, AUDIT_MAX - 1)]
            merged = newest_first([kept, single.get(ws, [])], AUDIT_MAX)
            if merged:
                await self._replace(self.new.audit(ws), "list",
                                    [_event_doc(e) for e in merged])
                report.audit_events += len(merged)
        return set(single) | lists

    async def _clean(self) -> int:
        removed = 0
        for pattern in self.old.patterns():
            keys = await self._keys(pattern)
            for start in range(0, len(keys), 500):
                removed += int(await self.client.delete(*keys[start:start + 500]))
        return removed


def _flat(fields: dict[str, str]) -> list[str | bytes]:
    return [x for kv in fields.items() for x in kv]


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``tokengate store migrate`` on the command line."""
    store = sub.add_parser("store", help="the store itself")
    ssub = store.add_subparsers(dest="action", required=True)
    migrate = ssub.add_parser(
        "migrate", help=f"convert the store to key layout {VERSION} (stop every gateway first)")
    migrate.add_argument("--force", action="store_true",
                         help="migrate even while processes are subscribed to invalidations")
    common(migrate)


async def store_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``tokengate store migrate``; exit status 0 (StoreMismatch, StoreError raise)."""
    url = settings.store.url
    if url.startswith("memory"):
        raise StoreMismatch("a memory:// store holds nothing to migrate")
    from gateway.store.redis import RedisStore

    store = RedisStore(url, prefix=settings.store.prefix, timeout=settings.store.timeout_seconds)
    try:
        report = await Migrator(store).run(force=args.force)
    finally:
        await store.close()
    if args.json:
        sys.stdout.write(orjson.dumps(asdict(report)).decode() + "\n")
    else:
        print(report.summary())
    return 0
