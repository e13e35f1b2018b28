"""The master key check: a store remembers which master key it was set up with.

A process holding another master key would hash secrets that never match and
encrypt trusted-auth keys nobody else can read, so ``serve`` and every store
command compare their key's check value (:meth:`Keys.check_value`) with the
one recorded in the store, and refuse a different key. The first process to
use a store (a new one, or one from before check values) records its value.
"""

from __future__ import annotations

import hmac

from gateway.keys import MASTER_KEY_ENV, Keys, MasterKeyError
from gateway.store.base import Store

# Enough of a check value to tell keys apart in a message, not to search for one.
SHOWN = 12


def wrong_key_message(recorded: str, presented: str) -> str:
    """The one-line refusal naming both check values (never a key)."""
    return (f"{MASTER_KEY_ENV} is not the master key this store was set up with "
            f"(the store's key check is {recorded[:SHOWN]}, this key's {presented[:SHOWN]}); "
            "use the store's master key")


async def check_master_key(store: Store, keys: Keys) -> None:
    """Raise :class:`MasterKeyError` unless ``keys`` is the store's master key.

    Records this key's check value if the store has none yet. Raises
    ``StoreError`` if the store cannot be reached.
    """
    await store.check_layout()  # first: another layout's key check is not this one's
    presented = keys.check_value()
    recorded = await store.claim_key_check(presented)
    if not hmac.compare_digest(recorded.encode(), presented.encode()):
        raise MasterKeyError(wrong_key_message(recorded, presented))
