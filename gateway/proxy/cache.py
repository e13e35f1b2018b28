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

from gateway.policy.model import Credential
from gateway.store.base import Invalidation


class CredentialCache:
    """A bounded LRU of credentials with a short TTL."""

    def __init__(
        self, *, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Credential]] = OrderedDict()
        self.generation = 0  # bumped by every invalidation; guards racing fills

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Credential | None:
        """The cached credential, or None on a miss or after its TTL."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry[1]

    def put(self, token: str, credential: Credential, *, generation: int) -> None:
        """Cache a credential loaded when the cache was at ``generation``.

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
        self.generation += 1
        if message is None or message.kind == "all":
            self._entries.clear()
        elif message.kind == "token":
            self._entries.pop(message.key, None)
        elif message.kind == "user":
            for token in [t for t, (_, c) in self._entries.items() if c.record.owner == message.key]:
                del self._entries[token]
        else:
            self._entries.clear()
