"""The in-process credential cache, invalidated by push.

A hit saves the store round trip for the credential (the rate-limit call is
then the only one on the hot path). Entries live at most ``ttl`` seconds;
revocations, user removals and settings changes arrive through the store's
invalidation channel and evict at once, on every process.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
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

    def put(self, token: str, credential: V, *, generation: int) -> None:
        """Cache a value loaded when the cache was at ``generation``.

        If an invalidation arrived while the load was in flight, the loaded
        copy may predate it, so it is not cached.
        """
        if self.ttl <= 0 or self.max_entries <= 0 or generation != self.generation:
            return
        self._entries[token] = (self._clock() + self.ttl, credential)
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


class CredentialCache(PushCache[Credential]):
    """API-token credentials, keyed by public token."""

    def __init__(
        self, *, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(ttl=ttl, max_entries=max_entries, kind="token",
                         owner_of=_credential_owner, clock=clock)
