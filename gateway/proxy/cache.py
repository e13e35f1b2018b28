"""The in-process credential cache, invalidated by push.

A hit saves the store round trip for the credential (the rate-limit call is
then the only one on the hot path). Entries live at most ``ttl`` seconds;
revocations, user removals and settings changes arrive through the store's
invalidation channel and evict at once, on every process.

A miss is loaded once however many requests want it at the same moment, and
a token the store did not know is remembered as unknown for a few seconds,
so a burst of made-up or not-yet-cached tokens cannot queue up store calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from gateway.policy.model import Credential
from gateway.store.base import Invalidation

V = TypeVar("V")


def _credential_owner(credential: Credential) -> str:
    return credential.record.owner


class PushCache(Generic[V]):
    """A bounded LRU with a TTL, emptied by the store's invalidation messages.

    ``kind`` is the message kind that names one of its keys (``token`` for
    API tokens, ``bearer`` for trusted-auth bearer hashes); ``user`` messages
    evict every entry ``owner_of`` attributes to that user; ``all`` and a lost
    channel empty it. Other kinds are for other caches.
    """

    def __init__(
        self, *, ttl: float, max_entries: int, kind: str, owner_of: Callable[[V], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.kind = kind
        self._owner_of = owner_of
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self.generation = 0  # bumped by every invalidation; guards racing fills

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> V | None:
        """The cached value, or None on a miss or after its TTL."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry[1]

    def put(self, token: str, credential: V, *, generation: int,
            lifetime: float | None = None) -> None:
        """Cache a value loaded when the cache was at ``generation``, for at most
        ``ttl`` seconds (or ``lifetime``, if shorter).

        If an invalidation arrived while the load was in flight, the loaded
        copy may predate it, so it is not cached.
        """
        if self.ttl <= 0 or self.max_entries <= 0 or generation != self.generation:
            return
        ttl = self.ttl if lifetime is None else min(self.ttl, lifetime)
        self._entries[token] = (self._clock() + ttl, credential)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, message: Invalidation | None) -> None:
        """Evict what a message names; everything for ``all`` or a lost channel."""
        if message is None or message.kind == "all":
            self.generation += 1
            self._entries.clear()
        elif message.kind == self.kind:
            self.generation += 1
            self._entries.pop(message.key, None)
        elif message.kind == "user":
            self.generation += 1
            owner_of = self._owner_of
            for key in [k for k, (_, v) in self._entries.items() if owner_of(v) == message.key]:
                del self._entries[key]


Fetch = Callable[[str], Awaitable[Credential | None]]


class CredentialCache(PushCache[Credential]):
    """API-token credentials, keyed by public token, and the token ids known to be unknown."""

    def __init__(
        self, *, ttl: float, max_entries: int, negative_ttl: float = 0.0,
        negative_max_entries: int = 0, clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(ttl=ttl, max_entries=max_entries, kind="token",
                         owner_of=_credential_owner, clock=clock)
        self._wall_clock = wall_clock
        self.negative_ttl = negative_ttl
        self.negative_max_entries = negative_max_entries
        self._unknown: OrderedDict[str, float] = OrderedDict()  # token -> forget at
        self._unknown_generation = 0  # bumped when a token may have become known
        self._loads: dict[str, tuple[tuple[int, int], asyncio.Task[Credential | None]]] = {}

    async def load(self, token: str, fetch: Fetch) -> Credential | None:
        """The credential for ``token``: cached, known unknown, or fetched.

        Concurrent misses for one token share one ``fetch``; its result is
        cached unless an invalidation arrived while it was in flight.
        """
        credential = self.get(token)
        if credential is not None:
            return credential
        forget_at = self._unknown.get(token)
        if forget_at is not None:
            if forget_at > self._clock():
                return None
            del self._unknown[token]
        generations = (self.generation, self._unknown_generation)
        flight = self._loads.get(token)
        # Join a load only if nothing was invalidated since it started: one
        # begun before a revocation may bring the record from before it.
        if flight is None or flight[0] != generations:
            task = asyncio.ensure_future(self._fill(token, fetch, generations))
            self._loads[token] = (generations, task)
            task.add_done_callback(lambda t: self._landed(token, t))
            flight = (generations, task)
        # Shielded: one waiter giving up must not cancel the load for the others.
        return await asyncio.shield(flight[1])

    async def _fill(self, token: str, fetch: Fetch, generations: tuple[int, int]) -> Credential | None:
        credential = await fetch(token)
        if credential is not None:
            self.put(token, credential, generation=generations[0],
                     lifetime=self._lifetime(credential))
        elif generations[1] == self._unknown_generation:
            self._put_unknown(token)
        return credential

    def _lifetime(self, credential: Credential) -> float | None:
        """Seconds until a rolled-away secret stops (wall-clock times): the entry
        goes then, so the next request reloads a record judged afresh."""
        until = credential.record.previous_secret_until
        if until is None:
            return None
        left = until - self._wall_clock()
        return left if left > 0 else None

    def _landed(self, token: str, task: asyncio.Task[Credential | None]) -> None:
        flight = self._loads.get(token)
        if flight is not None and flight[1] is task:
            del self._loads[token]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone

    def _put_unknown(self, token: str) -> None:
        if self.negative_ttl <= 0 or self.negative_max_entries <= 0:
            return
        self._unknown[token] = self._clock() + self.negative_ttl
        self._unknown.move_to_end(token)
        while len(self._unknown) > self.negative_max_entries:
            self._unknown.popitem(last=False)

    def invalidate(self, message: Invalidation | None) -> None:
        """Also forget unknown tokens: one that was ``created``, all of them for ``all``."""
        if message is None or message.kind == "all":
            self._unknown_generation += 1
            self._unknown.clear()
        elif message.kind == "created":
            self._unknown_generation += 1
            self._unknown.pop(message.key, None)
        super().invalidate(message)
