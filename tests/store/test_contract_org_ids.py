"""The Store contract for numeric org ids on trusted-auth keys, on every store."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gateway.policy.trusted import TrustedKey
from gateway.store.base import AlreadyExists, Store


def key(ws: str = "acme", generation: str = "g1", org_id: int | None = None) -> TrustedKey:
    return TrustedKey(workspace=ws, generation=generation, key_encrypted="enc-" + generation,
                      enabled_at=1_800_000_000.0, enabled_by="operator", org_id=org_id)


async def test_enable_with_an_org_id_finds_the_key_by_it(store: Store) -> None:
    """A key stored with org id 0 is found by 0 (and by its workspace, with the id)."""
    assert await store.enable_trusted_auth(key(org_id=0)) == key(org_id=0)
    assert await store.trusted_key_for_org_id(0) == key(org_id=0)
    assert await store.get_trusted_key("acme") == key(org_id=0)
    assert await store.trusted_key_for_org_id(1) is None


async def test_enable_without_an_org_id_has_none(store: Store) -> None:
    """No org id given: the key carries none and no number finds it."""
    await store.enable_trusted_auth(key())
    assert (await store.get_trusted_key("acme")).org_id is None  # type: ignore[union-attr]
    assert await store.trusted_key_for_org_id(0) is None


async def test_enabling_again_sets_the_org_id_and_keeps_the_key(store: Store) -> None:
    """An enabled workspace gets (or changes) its org id; the key stays; the old id is free."""
    await store.enable_trusted_auth(key())
    assert await store.enable_trusted_auth(key(generation="g2", org_id=7)) == key(org_id=7)
    assert await store.enable_trusted_auth(key(generation="g3", org_id=8)) == key(org_id=8)
    assert await store.trusted_key_for_org_id(7) is None
    assert await store.trusted_key_for_org_id(8) == key(org_id=8)
    # Enabling again with no org id leaves the one it has.
    assert await store.enable_trusted_auth(key(generation="g4")) == key(org_id=8)
    await store.enable_trusted_auth(key("other", org_id=7))
    assert (await store.trusted_key_for_org_id(7)).workspace == "other"  # type: ignore[union-attr]


async def test_an_org_id_has_one_holder(store: Store) -> None:
    """Another workspace's org id is refused, and nothing of the refused enable is stored."""
    await store.enable_trusted_auth(key(org_id=5))
    with pytest.raises(AlreadyExists):
        await store.enable_trusted_auth(key("other", org_id=5))
    assert await store.get_trusted_key("other") is None
    await store.enable_trusted_auth(key("other"))
    with pytest.raises(AlreadyExists):
        await store.enable_trusted_auth(key("other", generation="g2", org_id=5))
    assert (await store.get_trusted_key("other")).org_id is None  # type: ignore[union-attr]
    assert (await store.trusted_key_for_org_id(5)).workspace == "acme"  # type: ignore[union-attr]


async def test_disable_releases_the_org_id(store: Store) -> None:
    """Disabling frees the number for any workspace; re-enabling does not bring it back."""
    await store.enable_trusted_auth(key(org_id=5))
    assert await store.disable_trusted_auth("acme") == key(org_id=5)
    assert await store.trusted_key_for_org_id(5) is None
    await store.enable_trusted_auth(key("acme", generation="g2"))
    assert await store.trusted_key_for_org_id(5) is None
    assert await store.enable_trusted_auth(key("other", org_id=5)) == key("other", org_id=5)


async def test_concurrent_claims_of_one_org_id_have_one_winner(store: Store) -> None:
    """Ten workspaces claiming org id 3 at once: exactly one holds it, the rest are refused."""
    results = await asyncio.gather(
        *(store.enable_trusted_auth(key(f"ws{i}", org_id=3)) for i in range(10)),
        return_exceptions=True)
    won = [r for r in results if isinstance(r, TrustedKey)]
    assert len(won) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if r not in won)
    assert await store.trusted_key_for_org_id(3) == won[0]
    assert replace(won[0], org_id=None) == key(won[0].workspace)
