"""The running gateway: the objects both listeners share, and their lifetime."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.assertion import AssertionSigner
from gateway.config import Settings, compiled_policy
from gateway.expirywatch import ExpiryWatch
from gateway.keys import Keys
from gateway.lifecycle import Lifecycle
from gateway.metrics import Metrics
from gateway.policy.headers import identity_headers
from gateway.policy.model import Identity
from gateway.policy.policyset import PolicySet
from gateway.proxy.auth import Authenticator
from gateway.proxy.cache import CredentialCache
from gateway.proxy.forward import Forwarder
from gateway.proxy.lastused import LastUsed
from gateway.proxy.restrict import RULES as RESTRICTION_RULES
from gateway.store.base import Invalidation, Store

log = logging.getLogger("tokengate")


@dataclass(frozen=True, slots=True)
class PublicRoute:
    """An endpoint on the proxy listener that needs no credentials."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    name: str


class Gateway:
    """Settings, keys, store, caches and metrics of one gateway process."""

    def __init__(
        self,
        settings: Settings,
        keys: Keys,
        store: Store,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.store = store
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.policy: PolicySet = compiled_policy(settings)
        self.trusted_proxies = settings.proxy.trusted_networks()
        self.metrics.declare_route_classes([*(c.name for c in self.policy.classes), "none"])
        self.metrics.declare_deny_rules((r.name, r.mode) for r in self.policy.rules.rules)
        self.metrics.declare_deny_rules((rule, "enforce") for rule in RESTRICTION_RULES)
        self.metrics.declare_store_operations(["load_credential", "rate_limit"])
        self.cache = CredentialCache(
            ttl=settings.cache.ttl_seconds, max_entries=settings.cache.max_entries,
            negative_ttl=settings.cache.negative_ttl_seconds,
            negative_max_entries=settings.cache.negative_max_entries,
        )
        self.last_used = LastUsed(store)
        self.authenticator = Authenticator(
            store=store, keys=keys, settings=settings, cache=self.cache,
            last_used=self.last_used, metrics=self.metrics, clock=clock,
        )
        self.lifecycle = Lifecycle(store, keys, settings, clock=clock,
                                   class_names=lambda: [c.name for c in self.policy.classes])
        self.expiry_watch = ExpiryWatch(
            store, self.metrics, interval=settings.lifecycle.expiring_refresh_seconds, clock=clock)
        self.forwarder = Forwarder(
            settings.upstream.url,
            timeout=settings.upstream.timeout_seconds,
            connect_timeout=settings.upstream.connect_timeout_seconds,
            max_connections=settings.upstream.max_connections,
            metrics=self.metrics,
            body_timeout=settings.proxy.body_timeout_seconds,
            body_min_rate=settings.proxy.body_min_rate_bytes,
            strip_method_overrides=settings.proxy.method_override_headers == "strip",
            client=settings.upstream.client,
            idle_timeout=settings.upstream.idle_timeout_seconds,
            ca_file=settings.upstream.ca_file,
        )
        self.signer = AssertionSigner(
            keys.signing, ttl_seconds=settings.proxy.assertion_ttl_seconds
        )
        self.public_routes: list[PublicRoute] = []
        # Caches that invalidation messages must reach (the credential cache,
        # and those features add).
        self.invalidation_listeners: list[Callable[[Invalidation | None], None]] = [
            self.cache.invalidate]
        self.draining = False
        self._install_extensions()

    def identity_headers(self, identity: Identity, request_id: str) -> list[tuple[str, str]]:
        """What the upstream is told about the caller (and the signed assertion, if on)."""
        headers = identity_headers(identity)
        if self.settings.proxy.assertion:
            headers.append(("X-Tokengate-Assertion", self.signer.assertion(
                identity, self.clock(), request_id=request_id,
                audience=self.settings.assertion_audience)))
        return headers

    def _install_extensions(self) -> None:
        """Features that add public endpoints or credential kinds hook in here."""
        # Imported here: the feature's endpoints import this module.
        from gateway.trusted.service import install as install_trusted_auth

        install_trusted_auth(self)

    async def start(self) -> None:
        """Open the upstream pool and subscribe to invalidations."""
        await self.forwarder.start()
        await self.store.subscribe(self._on_invalidation)
        self.last_used.start()
        self.expiry_watch.start()

    async def stop(self) -> None:
        """Flush pending writes and release connections."""
        await self.expiry_watch.stop()
        await self.last_used.stop()
        await self.forwarder.close()
        await self.store.close()

    def _on_invalidation(self, message: Invalidation | None) -> None:
        if message is not None and message.kind == "block":
            self.authenticator.block(message.key, message.at)
            return
        for listener in self.invalidation_listeners:
            listener(message)
        if message is not None and message.kind != "created":
            # A created token is an announcement, not a revocation: it must
            # not show in the revocation-delay histogram.
            self.metrics.revocation_seen(message.at, self.clock())

    def reload(self, settings: Settings) -> None:
        """Swap in deny rules and rate-limit classes from new settings.

        Raises (and keeps the old policy) if the new one does not compile.
        """
        policy = compiled_policy(settings)
        self.metrics.declare_route_classes(c.name for c in policy.classes)
        self.metrics.declare_deny_rules((r.name, r.mode) for r in policy.rules.rules)
        self.policy = policy
        log.info("reloaded deny rules and rate-limit classes",
                 extra={"rules": len(policy.rules), "classes": len(list(policy.classes))})
