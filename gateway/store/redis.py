"""The production store: Redis, through redis.asyncio (with hiredis).

Key layout (prefix ``tg:`` by default):

* ``tg:user:<name>`` hash; ``tg:users`` and ``tg:ws:<ws>:users`` sets
* ``tg:tok:{<token>}`` hash; ``tg:ws:<ws>:tokens`` zset (by creation time);
  ``tg:owner:<name>:tokens`` set
* ``tg:ws:<ws>:settings`` hash; ``tg:ws:<ws>:audit`` and ``tg:audit:security``
  capped lists
* ``tg:rl:{<key>}`` sliding-window zsets (see ``ratelimit.lua``)
* ``tg:ws:<ws>:trusted`` hash (encrypted trusted-auth key, its generation, org id);
  ``tg:orgid:<n>`` string (the workspace holding numeric org id n);
  ``tg:tb:{<hash>}`` hash per trusted-auth bearer token, expiring with it
* channel ``tg:invalidate`` for cache invalidations
* ``tg:keycheck`` string: the master key's check value (never the key)
* ``tg:lease:<name>`` strings (short leases, SET NX PX) and the ``tg:expiring``
  hash (counts of tokens expiring soon, for the gauge)

Every multi-key change is one Lua script, so it is atomic and costs one
round trip; revocations publish their invalidation inside the same script.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from importlib import resources
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import quote

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.policy.expiring import (
    ExpiringCounts,
    counts_from_fields,
    counts_to_fields,
    expiring_counts,
)
from gateway.policy.model import (
    AuditEvent,
    Credential,
    Role,
    TokenRecord,
    TokenType,
    User,
    WorkspaceSettings,
)
from gateway.policy.ratelimit import RateDecision, Reservation
from gateway.policy.restrictions import TokenLimit, from_stored, stored_fields
from gateway.policy.trusted import BearerCredential, BearerRecord, TrustedKey
from gateway.store.base import (
    AUDIT_MAX,
    AlreadyExists,
    Invalidation,
    InvalidationHandler,
    RateWindow,
    StoreError,
    newest_first,
)
from gateway.store.ratelimit_redis import RedisRateLimiter
from gateway.store.resp import RespConnection, RespError
from gateway.store.sentinel import SCHEME as SENTINEL_SCHEME
from gateway.store.sentinel import BlockingSentinelPool, parse_sentinel_url

log = logging.getLogger("tokengate.store")
TOUCH_BATCH = 1000
DEFAULT_MAX_CONNECTIONS = 100
P = ParamSpec("P")
T = TypeVar("T")


def _lua(name: str) -> str:
    return resources.files("gateway.store").joinpath(f"lua/{name}.lua").read_text()


def _wrap_errors(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn any Redis failure into StoreError, so callers fail closed with 503."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError, RespError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}") from exc

    return wrapper


def _repeatable(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """``_wrap_errors``, and one more try when Redis dropped the connection under the call.

    A dropped connection (killed, reset, a restart, a failover) leaves unknown
    whether a write already ran, so only calls whose repeat changes nothing and
    answers the same carry this: reads, and the idempotent writes (each says
    why). The others (adding users, creating tokens, revoke-all, user removal,
    audit events, rate-limit counts) answer 503 instead of risking a double.
    """

    @functools.wraps(fn)
    async def again(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except RedisConnectionError as exc:
            # The pool's wait for a free connection running out is reported as
            # a ConnectionError too: waiting again would only double the delay.
            if isinstance(exc.__cause__, TimeoutError):
                raise
        # redis-py closed the failed connection; this try opens a new one.
        return await fn(*args, **kwargs)

    return _wrap_errors(again)


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_s(flat[i]) or "": _s(flat[i + 1]) or "" for i in range(0, len(flat), 2)}


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


def _user(username: str, h: Mapping[str, str]) -> User:
    return User(username, Role(h["role"]), h["workspace"], float(h["created_at"]),
                h.get("generation", ""))


def _settings(h: Mapping[str, str]) -> WorkspaceSettings:
    def opt_int(key: str) -> int | None:
        v = h.get(key)
        return int(v) if v else None

    return WorkspaceSettings(
        member_tokens=h.get("member_tokens") == "1",
        default_expiry_days=opt_int("default_expiry_days"),
        max_expiry_days=opt_int("max_expiry_days"),
    )


class RedisStore:
    """Store on one Redis server (``redis://``, ``rediss://``, ``unix://``), or on the
    master that Sentinel names (``redis+sentinel://``)."""

    def __init__(self, url: str, *, prefix: str = "tg:", timeout: float = 2.0,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.prefix = prefix
        self.channel = prefix + "invalidate"
        # A waiting pool: under a burst, calls queue for a free connection (for
        # at most ``timeout``) instead of failing, as redis-py's default pool
        # does past its size. The pub/sub listener holds one connection of it;
        # the hot-path rate-limit call has its own (RespConnection).
        # RESP2: under RESP3 (redis-py 8's default) redis-py 8.1 skips the
        # check that replaces a pooled connection the server closed while it
        # sat idle (redis/redis-py#4252), so the next call on it failed.
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                   "health_check_interval": 30, "protocol": 2,
                                   "max_connections": max_connections, "timeout": timeout}
        self._sentinel: Sentinel | None = None
        if url.startswith(SENTINEL_SCHEME + "://"):
            target = parse_sentinel_url(url)
            # Ask each sentinel once, without retries: an unreachable one must
            # not use up the whole store timeout before the next is asked.
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.hosts),
                sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                 "retry": Retry(NoBackoff(), 0)})
            self._sentinel = sentinel
            self.client: aioredis.Redis = sentinel.master_for(
                target.service, db=target.db, username=target.username,
                password=target.password, connection_pool_class=BlockingSentinelPool,
                **options)
            auth = f"{target.username or ''}:{quote(target.password or '')}@" \
                if target.password else ""

            async def master() -> tuple[str, int]:
                host, port = await sentinel.discover_master(target.service)
                return str(host), int(port)

            self._fast = RespConnection(f"redis://{auth}sentinel/{target.db}",
                                        timeout=timeout, resolve=master)
        else:
            self.client = aioredis.Redis.from_pool(
                aioredis.BlockingConnectionPool.from_url(url, **options))
            self._fast = RespConnection(url, timeout=timeout)
        self._limiter = RedisRateLimiter(self.client, prefix, fast=self._fast)
        self._scripts = {
            name: self.client.register_script(_lua(name))
            for name in ("credential", "create_token", "revoke_token", "revoke_all",
                         "remove_user", "touch")
        }
        self._listener: asyncio.Task[None] | None = None
        self._handlers: list[InvalidationHandler] = []

    # keys
    def _tok(self, token: str) -> str:
        return f"{self.prefix}tok:{{{token}}}"

    def _user_key(self, username: str) -> str:
        return f"{self.prefix}user:{username}"

    def _ws(self, workspace: str, what: str) -> str:
        return f"{self.prefix}ws:{workspace}:{what}"

    def _owner(self, username: str) -> str:
        return f"{self.prefix}owner:{username}:tokens"

    @_repeatable
    async def ping(self) -> None:
        """Raise StoreError unless Redis answers."""
        await self.client.ping()

    async def close(self) -> None:
        """Stop the listener and close connections."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await self._fast.close()
        await self.client.aclose()
        if self._sentinel is not None:
            for client in self._sentinel.sentinels:
                await client.aclose()

    @_repeatable  # a repeat finds the value the first try set, and answers it
    async def claim_key_check(self, value: str) -> str:
        """Record the master key's check value unless one is recorded; the recorded one."""
        key = self.prefix + "keycheck"
        if await self.client.set(key, value, nx=True):
            return value
        # Deleted in between (by an operator resetting it): this value may stand.
        return _s(await self.client.get(key)) or value

    # users
    @_wrap_errors
    async def add_user(self, user: User) -> None:
        """Add a user; AlreadyExists if taken."""
        key = self._user_key(user.username)
        fields = {"role": user.role.value, "workspace": user.workspace,
                  "created_at": repr(user.created_at), "generation": user.generation}
        async with self.client.pipeline(transaction=True) as pipe:
            # HSETNX on a marker field makes the existence check atomic.
            pipe.hsetnx(key, "username", user.username)
            pipe.hsetnx(key, "created_at", fields["created_at"])
            res = await pipe.execute()
        if not res[0]:
            raise AlreadyExists(user.username)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast("Mapping[Any, Any]", fields))
            pipe.sadd(self.prefix + "users", user.username)
            pipe.sadd(self._ws(user.workspace, "users"), user.username)
            pipe.sadd(self.prefix + "workspaces", user.workspace)
            await pipe.execute()

    @_repeatable
    async def get_user(self, username: str) -> User | None:
        """One user, or None."""
        h = _pairs_dict(await self.client.hgetall(self._user_key(username)))
        return _user(username, h) if "role" in h else None

    @_repeatable
    async def list_users(self, workspace: str | None) -> list[User]:
        """Users of a workspace (or all), sorted by name."""
        key = self._ws(workspace, "users") if workspace else self.prefix + "users"
        names = sorted(_s(n) or "" for n in await self.client.smembers(key))
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._user_key(name))
            rows = await pipe.execute()
        return [_user(n, _pairs_dict(h)) for n, h in zip(names, rows) if h]

    @_wrap_errors
    async def remove_user(self, username: str, *, at: float) -> int | None:
        """Remove a user and revoke every token they own, atomically."""
        msg = orjson.dumps({"kind": "user", "key": username, "at": at})
        count = await self._scripts["remove_user"](
            keys=[self._user_key(username), self._owner(username), self.prefix + "users"],
            args=[repr(at), self.prefix, self.channel, msg, username],
        )
        return None if int(count) < 0 else int(count)

    # tokens
    @_wrap_errors
    async def create_token(self, record: TokenRecord) -> None:
        """Store and index a new token atomically."""
        fields: list[str] = []
        for k, v in _record_fields(record).items():
            fields += [k, v]
        ok = await self._scripts["create_token"](
            keys=[self._tok(record.token), self._ws(record.workspace, "tokens"),
                  self._owner(record.owner)],
            args=[record.token, repr(record.created_at), *fields],
        )
        if not ok:
            raise AlreadyExists(record.token)
        await self.client.sadd(self.prefix + "workspaces", record.workspace)

    @_repeatable
    async def get_token(self, token: str) -> TokenRecord | None:
        """One token record, or None."""
        h = _pairs_dict(await self.client.hgetall(self._tok(token)))
        return _record(token, h) if h else None

    @_repeatable
    async def load_credential(self, token: str) -> Credential | None:
        """Token, owner and workspace settings in one round trip."""
        res = await self._scripts["credential"](keys=[self._tok(token)], args=[self.prefix])
        if not res:
            return None
        record = _record(token, _pairs(res[0]))
        owner_h = _pairs(res[1])
        owner = _user(record.owner, owner_h) if "role" in owner_h else None
        return Credential(record, owner, _settings(_pairs(res[2])))

    @_repeatable
    async def list_tokens(
        self, workspace: str | None, *, owner: str | None = None
    ) -> list[TokenRecord]:
        """Tokens of a workspace (or all), oldest first."""
        if workspace is None:
            workspaces = sorted(_s(w) or "" for w in
                                await self.client.smembers(self.prefix + "workspaces"))
        else:
            workspaces = [workspace]
        tokens: list[str] = []
        for ws in workspaces:
            members = await self.client.zrange(self._ws(ws, "tokens"), 0, -1)
            tokens += [_s(cast(bytes, t)) or "" for t in members]
        async with self.client.pipeline(transaction=False) as pipe:
            for t in tokens:
                pipe.hgetall(self._tok(t))
            rows = await pipe.execute()
        records = [_record(t, _pairs_dict(h)) for t, h in zip(tokens, rows) if h]
        if owner is not None:
            records = [r for r in records if r.owner == owner]
        return sorted(records, key=lambda r: (r.created_at, r.token))

    @_repeatable  # the script keeps the first revoked_at and publishes only then
    async def revoke_token(self, token: str, *, at: float) -> TokenRecord | None:
        """Revoke one token and publish the invalidation, atomically."""
        msg = orjson.dumps({"kind": "token", "key": token, "at": at})
        res = await self._scripts["revoke_token"](
            keys=[self._tok(token)], args=[repr(at), self.channel, msg]
        )
        return _record(token, _pairs(res)) if res else None

    @_wrap_errors
    async def revoke_all(
        self,
        workspace: str,
        *,
        at: float,
        token_type: TokenType | None = None,
        owner: str | None = None,
    ) -> int:
        """Revoke every active token of a workspace (of a type/owner), atomically."""
        msg = orjson.dumps({"kind": "all", "key": workspace, "at": at})
        count = await self._scripts["revoke_all"](
            keys=[self._ws(workspace, "tokens")],
            args=[repr(at), token_type.value if token_type else "", owner or "",
                  self.prefix, self.channel, msg],
        )
        return int(count)

    @_repeatable  # last_used_at never moves backwards: a repeat writes nothing new
    async def touch(self, last_used: Mapping[str, float]) -> None:
        """Coalesced last_used_at writes in one script call."""
        items = list(last_used.items())
        # In slices, so one flush of many tokens never blocks Redis for long.
        for i in range(0, len(items), TOUCH_BATCH):
            batch = items[i:i + TOUCH_BATCH]
            await self._scripts["touch"](
                keys=[self._tok(t) for t, _ in batch], args=[repr(ts) for _, ts in batch]
            )

    # settings
    @_repeatable
    async def get_settings(self, workspace: str) -> WorkspaceSettings:
        """A workspace's settings."""
        return _settings(_pairs_dict(await self.client.hgetall(self._ws(workspace, "settings"))))

    @_repeatable  # the same values again; a second invalidation only reloads caches
    async def put_settings(self, workspace: str, settings: WorkspaceSettings) -> None:
        """Replace a workspace's settings and push an invalidation."""
        key = self._ws(workspace, "settings")
        mapping = {
            "member_tokens": "1" if settings.member_tokens else "0",
            "default_expiry_days": str(settings.default_expiry_days or ""),
            "max_expiry_days": str(settings.max_expiry_days or ""),
        }
        msg = orjson.dumps({"kind": "all", "key": workspace, "at": time.time()})
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast("Mapping[Any, Any]", mapping))
            pipe.sadd(self.prefix + "workspaces", workspace)
            pipe.publish(self.channel, msg)
            await pipe.execute()

    # audit: ``tg:ws:<ws>:audit`` capped list per workspace (``tg:audit:workspaces``
    # names them), ``tg:audit:security`` for events of no workspace; ``tg:audit``
    # is the single list of older versions, still read
    def _audit_key(self, workspace: str) -> str:
        return self._ws(workspace, "audit") if workspace else self.prefix + "audit:security"

    @_wrap_errors
    async def append_audit(self, event: AuditEvent) -> None:
        """Record an event in its workspace's list (or the security list), keeping AUDIT_MAX."""
        doc = orjson.dumps({"at": event.at, "event": event.event, "actor": event.actor,
                            "subject": event.subject, "workspace": event.workspace,
                            "detail": event.detail})
        key = self._audit_key(event.workspace)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(key, doc)
            pipe.ltrim(key, 0, AUDIT_MAX - 1)
            if event.workspace:
                pipe.sadd(self.prefix + "audit:workspaces", event.workspace)
            await pipe.execute()

    @_repeatable
    async def list_audit(self, *, workspace: str | None, limit: int) -> list[AuditEvent]:
        """The newest events first (of every list, merged by time, for None)."""
        if workspace is not None:
            keys = [self._audit_key(workspace)]
        else:
            names = await self.client.smembers(self.prefix + "audit:workspaces")
            keys = [self._audit_key(_s(n) or "") for n in sorted(names)]
            keys.append(self._audit_key(""))
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.lrange(key, 0, limit - 1)
            lists = [[_event(raw) for raw in rows] for rows in await pipe.execute()]
        lists.append(await self._legacy_audit(workspace, limit))
        return newest_first(lists, limit)

    async def _legacy_audit(self, workspace: str | None, limit: int) -> list[AuditEvent]:
        out: list[AuditEvent] = []
        start, page = 0, max(limit, 100)
        while len(out) < limit and start < AUDIT_MAX:
            rows = await self.client.lrange(self.prefix + "audit", start, start + page - 1)
            if not rows:
                break
            for raw in rows:
                event = _event(raw)
                if workspace is None or event.workspace == workspace:
                    out.append(event)
                    if len(out) >= limit:
                        break
            start += page
        return out

    # rate limits
    @_wrap_errors
    async def hit_rate_limit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """One atomic script call (time from Redis itself)."""
        return await self._limiter.hit(key, limit, window_seconds)

    @_wrap_errors
    async def peek_rate_limit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """Would a request be admitted now? Records nothing."""
        return await self._limiter.peek(key, limit, window_seconds)

    @_wrap_errors
    async def reserve_rate_limit(self, key: str, limit: int, window_seconds: float) -> Reservation:
        """One atomic script call that also returns the admission's timestamp."""
        return await self._limiter.reserve(key, limit, window_seconds)

    @_wrap_errors
    async def refund_rate_limit(
        self, key: str, limit: int, window_seconds: float, *, at_us: int
    ) -> RateDecision:
        """Take back a reserved admission, in one atomic script call."""
        return await self._limiter.refund(key, limit, window_seconds, at_us=at_us)

    # invalidation
    async def subscribe(self, handler: InvalidationHandler) -> None:
        """Start (once) a listener that delivers every invalidation to handlers."""
        self._handlers.append(handler)
        if self._listener is None:
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready))
            # Wait (briefly) until subscribed, so nothing published after this
            # returns can be missed.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ready.wait(), 5)

    @_repeatable  # a second invalidation only reloads caches
    async def publish(self, message: Invalidation) -> None:
        """Publish one invalidation to every process."""
        await self.client.publish(
            self.channel, orjson.dumps({"kind": message.kind, "key": message.key, "at": message.at})
        )

    async def _dispatch(self, message: Invalidation | None) -> None:
        for handler in list(self._handlers):
            try:
                result = handler(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a broken handler must not stop invalidations
                log.exception("invalidation handler failed")

    async def _listen(self, ready: asyncio.Event) -> None:
        backoff = 0.1
        lost = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                ready.set()
                backoff = 0.1
                if lost:
                    # Anything published while we were away is gone: drop all.
                    await self._dispatch(None)
                    lost = False
                while True:
                    msg = await pubsub.get_message(timeout=30.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        d = orjson.loads(msg["data"])
                        inv = Invalidation(str(d["kind"]), str(d["key"]), float(d["at"]))
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        inv = None  # unknown message: be safe, drop everything
                    await self._dispatch(inv)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
                # Messages may have been lost while disconnected: tell handlers
                # to drop everything they cached, then resubscribe.
                log.warning("invalidation listener lost redis: %s", type(exc).__name__)
                lost = True
                await self._dispatch(None)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    # trusted authentication: ``tg:ws:<ws>:trusted`` hash (the encrypted key, its
    # generation, the org id); ``tg:orgid:<n>`` names the workspace holding org
    # id n; ``tg:tb:{<hash>}`` hash per bearer token, expiring with it
    @functools.cached_property
    def _trusted_scripts(self) -> dict[str, Any]:
        return {name: self.client.register_script(_lua(name))
                for name in ("trusted_enable", "trusted_disable", "trusted_bearer",
                             "trusted_revoke")}

    def _org_id_key(self, org_id: int) -> str:
        return f"{self.prefix}orgid:{org_id}"

    def _bearer_key(self, token_hash: str) -> str:
        return f"{self.prefix}tb:{{{token_hash}}}"

    @_wrap_errors
    async def enable_trusted_auth(self, key: TrustedKey) -> TrustedKey:
        """Store the key unless the workspace has one, and its org id (atomically)."""
        fields = {"generation": key.generation, "key": key.key_encrypted,
                  "enabled_at": repr(key.enabled_at), "enabled_by": key.enabled_by}
        keys = [self._ws(key.workspace, "trusted"), self.prefix + "workspaces"]
        org = ""
        if key.org_id is not None:
            org = str(key.org_id)
            keys.append(self._org_id_key(key.org_id))
        res = await self._trusted_scripts["trusted_enable"](
            keys=keys,
            args=[key.workspace, org, self.prefix, *(x for kv in fields.items() for x in kv)],
        )
        if _s(res[0]) == "taken":
            raise AlreadyExists(f"org id {org}")
        return _trusted_key(key.workspace, _pairs(res[1]))

    @_repeatable
    async def get_trusted_key(self, workspace: str) -> TrustedKey | None:
        """A workspace's key, or None."""
        h = _pairs_dict(await self.client.hgetall(self._ws(workspace, "trusted")))
        return _trusted_key(workspace, h) if h else None

    @_repeatable
    async def trusted_key_for_org_id(self, org_id: int) -> TrustedKey | None:
        """The key of the workspace the org id's directory entry names, or None."""
        workspace = _s(await self.client.get(self._org_id_key(org_id)))
        if workspace is None:
            return None
        key = await self.get_trusted_key(workspace)
        return key if key is not None and key.org_id == org_id else None

    @_wrap_errors
    async def disable_trusted_auth(self, workspace: str) -> TrustedKey | None:
        """Remove a workspace's key and org id, returning the key, in one script."""
        msg = orjson.dumps({"kind": "all", "key": workspace, "at": time.time()})
        old = await self._trusted_scripts["trusted_disable"](
            keys=[self._ws(workspace, "trusted")],
            args=[workspace, self.prefix, self.channel, msg])  # cached bearers go at once
        h = _pairs(old)
        return _trusted_key(workspace, h) if h else None

    @_repeatable  # the same fields again (expires_at, not the TTL, bounds the token)
    async def create_bearer(self, record: BearerRecord) -> None:
        """Store a bearer token with its lifetime as the key's TTL."""
        key = self._bearer_key(record.token_hash)
        ttl_ms = max(1, math.ceil((record.expires_at - record.created_at) * 1000))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={
                "user": record.user, "workspace": record.workspace,
                "generation": record.generation, "created_at": repr(record.created_at),
                "expires_at": repr(record.expires_at), "user_generation": record.user_generation,
            })
            pipe.pexpire(key, ttl_ms)
            await pipe.execute()

    @_repeatable
    async def load_bearer(self, token_hash: str) -> BearerCredential | None:
        """Bearer, user and the workspace's key generation in one script call."""
        res = await self._trusted_scripts["trusted_bearer"](
            keys=[self._bearer_key(token_hash)], args=[self.prefix])
        if not res:
            return None
        record = _bearer(token_hash, _pairs(res[0]))
        owner_h = _pairs(res[1])
        owner = _user(record.user, owner_h) if "role" in owner_h else None
        return BearerCredential(record, owner, _s(res[2]))

    @_repeatable  # the script keeps the first revoked_at and publishes only then
    async def revoke_bearer(self, token_hash: str, *, at: float) -> BearerRecord | None:
        """Revoke one bearer token (idempotent), keeping its TTL."""
        msg = orjson.dumps({"kind": "bearer", "key": token_hash, "at": at})
        res = await self._trusted_scripts["trusted_revoke"](
            keys=[self._bearer_key(token_hash)], args=[repr(at), self.channel, msg])
        return _bearer(token_hash, _pairs(res)) if res else None

    # token restrictions and rolling: fields of ``tg:tok:{<token>}`` (``scopes``,
    # ``allowed_networks``, ``rate_limit`` as JSON; ``previous_secret_hash``,
    # ``previous_secret_until``, ``rolled_at``); a token's own window is
    # ``tg:rl:{token:<token>}`` beside the user's
    @functools.cached_property
    def _token_scripts(self) -> dict[str, Any]:
        return {name: self.client.register_script(_lua(name))
                for name in ("roll_token", "set_token_field")}

    @_wrap_errors
    async def hit_rate_limit_both(
        self, first: RateWindow, second: RateWindow
    ) -> tuple[RateDecision, RateDecision]:
        """Both windows in one atomic script call (time from Redis itself)."""
        return await self._limiter.hit_both(first, second)

    @_wrap_errors  # not repeatable: a second roll would end the old secret's grace
    async def roll_secret(self, token: str, *, secret_hash: str, previous_until: float,
                          at: float) -> TokenRecord | None:
        """Swap the secret hash and publish the invalidation, in one script."""
        msg = orjson.dumps({"kind": "token", "key": token, "at": at})
        res = await self._token_scripts["roll_token"](
            keys=[self._tok(token)],
            args=[secret_hash, repr(previous_until), repr(at), self.channel, msg])
        return _record(token, _pairs(res)) if res else None

    @_repeatable  # the same value again; a second invalidation only reloads caches
    async def set_rate_limit(self, token: str, rate_limit: TokenLimit | None) -> TokenRecord | None:
        """Set or remove the ``rate_limit`` field and publish the invalidation, in one script."""
        value = "" if rate_limit is None else orjson.dumps(rate_limit.to_json()).decode()
        msg = orjson.dumps({"kind": "token", "key": token, "at": time.time()})
        res = await self._token_scripts["set_token_field"](
            keys=[self._tok(token)], args=["rate_limit", value, self.channel, msg])
        return _record(token, _pairs(res)) if res else None

    # expiry watch: ``tg:lease:<name>`` (SET NX PX: one replica refreshes per
    # interval) and ``tg:expiring`` hash (its counts, read by every replica)
    @_wrap_errors
    async def claim_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """SET NX PX: True if this call took the lease."""
        ms = max(1, math.ceil(ttl_seconds * 1000))
        return bool(await self.client.set(f"{self.prefix}lease:{name}", holder, nx=True, px=ms))

    @_repeatable  # a scan and an overwrite of the same counts
    async def refresh_expiring(self, now: float) -> ExpiringCounts:
        """Scan every workspace's tokens (pipelined, in slices) and keep the counts."""
        workspaces = sorted(_s(w) or "" for w in
                            await self.client.smembers(self.prefix + "workspaces"))
        rows: list[tuple[str, float | None, float | None]] = []
        for ws in workspaces:
            tokens = [_s(cast(bytes, t)) or "" for t in
                      await self.client.zrange(self._ws(ws, "tokens"), 0, -1)]
            for i in range(0, len(tokens), TOUCH_BATCH):
                async with self.client.pipeline(transaction=False) as pipe:
                    for t in tokens[i:i + TOUCH_BATCH]:
                        pipe.hmget(self._tok(t), ["type", "expires_at", "revoked_at"])
                    for kind, expires, revoked in await pipe.execute():
                        if kind is not None:
                            rows.append((_s(kind) or "", _f(_s(expires)), _f(_s(revoked))))
        counts = expiring_counts(rows, now)
        await self.client.hset(self.prefix + "expiring",
                               mapping=cast("Mapping[Any, Any]", counts_to_fields(counts)))
        return counts

    @_repeatable
    async def load_expiring(self) -> ExpiringCounts:
        """The counts the last refresh kept."""
        return counts_from_fields(_pairs_dict(await self.client.hgetall(self.prefix + "expiring")))


def _pairs_dict(h: Mapping[Any, Any]) -> dict[str, str]:
    return {_s(k) or "": _s(v) or "" for k, v in h.items()}


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


def _event(raw: bytes | str) -> AuditEvent:
    d = orjson.loads(raw)
    return AuditEvent(d["at"], d["event"], d["actor"], d["subject"], d["workspace"],
                      d.get("detail") or {})


def _trusted_key(workspace: str, h: Mapping[str, str]) -> TrustedKey:
    return TrustedKey(workspace=workspace, generation=h["generation"], key_encrypted=h["key"],
                      enabled_at=float(h["enabled_at"]), enabled_by=h.get("enabled_by", ""),
                      org_id=int(h["org_id"]) if h.get("org_id") else None)


def _bearer(token_hash: str, h: Mapping[str, str]) -> BearerRecord:
    return BearerRecord(
        token_hash=token_hash, user=h["user"], workspace=h["workspace"],
        generation=h["generation"], created_at=float(h["created_at"]),
        expires_at=float(h["expires_at"]), revoked_at=_f(h.get("revoked_at")),
        user_generation=h.get("user_generation", ""),
    )
