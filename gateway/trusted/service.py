"""Trusted authentication: workspace keys, minting and checking bearer tokens.

:func:`install` wires the feature into a gateway: the authenticator's bearer
hook and the public token-request endpoints. The admin API and the CLI
manage keys through :class:`TrustedAuth` as well.

Nothing here logs or echoes a ``secret_key`` or a bearer token: logs and
audit events name a bearer by its public id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag

from gateway.config import Settings
from gateway.keys import Keys
from gateway.lifecycle import Lifecycle
from gateway.policy import trusted
from gateway.policy.credentials import bearer_well_formed, new_bearer_token
from gateway.policy.errors import (
    Conflict,
    NotFound,
    Problem,
    Unauthenticated,
    Unprocessable,
)
from gateway.policy.model import Identity, Role, User, iso, new_user_generation
from gateway.policy.permissions import Actor, require_admin, target_workspace
from gateway.policy.tokenrequests import OrgRef, RevokeRequest, TokenRequest
from gateway.policy.trusted import BearerCredential, BearerRecord, TrustedKey
from gateway.proxy.cache import PushCache
from gateway.store.base import AlreadyExists, Store
from gateway.trusted.endpoints import public_routes
from gateway.trusted.guard import KeyGuard

if TYPE_CHECKING:
    from gateway.metrics import Metrics
    from gateway.runtime import Gateway

log = logging.getLogger("tokengate.trusted")

AUTO_CREATE_ACTOR = "trusted-auth"
REFUSED = "the secret_key is not valid for this workspace, or trusted authentication is disabled"
ORG_ID_TAKEN = "org_id: another workspace has this org id"
OTHER_WORKSPACE = "other"  # metrics label for a refused key of a workspace with no key


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """A workspace's trusted-auth state as admins see it (with the key, to copy)."""

    workspace: str
    secret_key: str | None = field(repr=False)
    enabled_at: float | None = None
    enabled_by: str | None = None
    created: bool = False
    org_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The admin view: the key itself while enabled."""
        return {
            "workspace": self.workspace,
            "enabled": self.secret_key is not None,
            "secret_key": self.secret_key,
            "enabled_at": iso(self.enabled_at),
            "enabled_by": self.enabled_by,
            "org_id": self.org_id,
        }


@dataclass(frozen=True, slots=True)
class Minted:
    """A bearer token just minted (the only time the token exists in clear)."""

    token: str = field(repr=False)
    user: User
    record: BearerRecord


class TrustedAuth:
    """Key management for admins; minting, checking and revoking bearer tokens."""

    def __init__(self, *, lifecycle: Lifecycle, metrics: Metrics | None = None) -> None:
        self.lifecycle = lifecycle
        self.store: Store = lifecycle.store
        self.keys: Keys = lifecycle.keys
        self.settings: Settings = lifecycle.settings
        self.clock: Callable[[], float] = lifecycle.clock
        self.metrics = metrics
        self.guard = KeyGuard(lifecycle=lifecycle, config=self.settings.trusted_auth,
                              metrics=metrics)
        # Validated bearers, so a proxied request costs only its rate-limit
        # call; revocation, disabling and user removal are pushed (see install).
        self.cache: PushCache[BearerCredential] = PushCache(
            ttl=self.settings.cache.ttl_seconds, max_entries=self.settings.cache.max_entries,
            kind="bearer", owner_of=_bearer_user,
        )

    @classmethod
    def of(cls, gw: Gateway) -> TrustedAuth:
        """The service for a running gateway."""
        return cls(lifecycle=gw.lifecycle, metrics=gw.metrics)

    # --- keys (admins) ---------------------------------------------------

    def _workspace(self, actor: Actor, workspace: str | None, what: str) -> str:
        require_admin(actor, what)
        return target_workspace(actor, workspace, self.settings.default_workspace)

    def _plaintext(self, key: TrustedKey) -> str:
        try:
            return self.keys.decrypt(key.key_encrypted,
                                     context=trusted.key_context(key.workspace, key.generation))
        except (InvalidTag, ValueError):
            log.error("cannot decrypt the trusted-auth key; was the master key changed?",
                      extra={"workspace": key.workspace})
            raise Problem("the stored secret_key cannot be decrypted with this master key; "
                          "disable and enable trusted authentication again") from None

    def _status(self, key: TrustedKey, *, created: bool = False) -> KeyStatus:
        return KeyStatus(key.workspace, self._plaintext(key), key.enabled_at, key.enabled_by,
                         created, key.org_id)

    async def enable(self, actor: Actor, workspace: str | None,
                     org_id: int | None = None) -> KeyStatus:
        """Enable trusted auth with a new key; if already enabled, the current key.

        ``org_id`` gives the workspace that numeric ThoughtSpot org id (also
        when already enabled: the key stays); 409 if another workspace has it.
        """
        ws = self._workspace(actor, workspace, "enable trusted authentication")
        before = await self.store.get_trusted_key(ws) if org_id is not None else None
        generation = trusted.new_generation()
        secret_key = trusted.new_secret_key()
        new = TrustedKey(
            workspace=ws, generation=generation, enabled_at=self.clock(), enabled_by=actor.name,
            key_encrypted=self.keys.encrypt(secret_key,
                                            context=trusted.key_context(ws, generation)),
            org_id=org_id,
        )
        try:
            stored = await self.store.enable_trusted_auth(new)
        except AlreadyExists:
            # Which workspace has it is another tenant's business.
            raise Conflict(ORG_ID_TAKEN, extra={"field": "org_id"}) from None
        if stored.generation != generation:
            if org_id is not None and (before is None or before.org_id != org_id):
                await self.lifecycle.audit("trusted_auth.org_id_set", actor.name, ws, ws,
                                           org_id=org_id,
                                           previous=before.org_id if before else None)
            return self._status(stored)
        await self.lifecycle.audit("trusted_auth.enabled", actor.name, ws, ws,
                                   generation=generation, org_id=org_id)
        if self.metrics is not None:
            self.metrics.declare_workspaces([ws])
        return KeyStatus(ws, secret_key, new.enabled_at, new.enabled_by, created=True,
                         org_id=stored.org_id)

    async def show(self, actor: Actor, workspace: str | None) -> KeyStatus:
        """The workspace's key (to copy again), or a disabled status."""
        ws = self._workspace(actor, workspace, "read the trusted-auth key")
        key = await self.store.get_trusted_key(ws)
        return KeyStatus(ws, None) if key is None else self._status(key)

    async def disable(self, actor: Actor, workspace: str | None) -> KeyStatus:
        """Disable trusted auth: the key and every token minted with it stop working."""
        ws = self._workspace(actor, workspace, "disable trusted authentication")
        old = await self.store.disable_trusted_auth(ws)
        if old is not None:
            await self.lifecycle.audit("trusted_auth.disabled", actor.name, ws, ws,
                                       generation=old.generation)
        return KeyStatus(ws, None)

    # --- the key on the public endpoints ---------------------------------

    async def _key_of(self, org: OrgRef) -> TrustedKey | None:
        # A number is a numeric org id first, then (if no workspace has it) a name.
        if org.number is not None:
            key = await self.store.trusted_key_for_org_id(org.number)
            if key is not None:
                return key
        return await self.store.get_trusted_key(org.name)

    async def check_key(self, org: OrgRef, presented: str, client: str,
                        endpoint: str) -> TrustedKey:
        """The key of the workspace ``org`` names if ``presented`` is it; else 401 (429 past the limit).

        The attempt takes a slot of the client's failure budget before any
        key is compared (a right key gives it back), so neither the limit
        nor a burst of parallel guesses can be used as an oracle.
        """
        attempt = await self.guard.reserve(client)
        key = await self._key_of(org)
        if key is not None and trusted.key_matches(presented, self._plaintext(key)):
            await self.guard.refund(attempt)
            return key
        reason = "wrong_key" if key is not None else "disabled"
        workspace = key.workspace if key is not None else org.name
        if self.metrics is not None:
            self.metrics.trusted_key_failure(workspace if key is not None else OTHER_WORKSPACE)
        await self.guard.refused(attempt, workspace=workspace, known=key is not None,
                                 reason=reason, endpoint=endpoint)
        raise Unauthenticated(REFUSED, reason="bad_secret" if key is not None else "disabled_feature")

    # --- bearer tokens ---------------------------------------------------

    async def mint(self, request: TokenRequest, client: str, endpoint: str) -> Minted:
        """Check the key, find (or create) the user, and mint a bearer token."""
        key = await self.check_key(request.org, request.secret_key, client, endpoint)
        user = await self._user(request, key.workspace)
        now = self.clock()
        token = new_bearer_token()
        record = BearerRecord(
            token_hash=self.keys.hash_secret(token), user=user.username,
            workspace=user.workspace, generation=key.generation,
            created_at=now, expires_at=now + request.validity_seconds,
            user_generation=user.generation,
        )
        await self.store.create_bearer(record)
        if self.metrics is not None:
            self.metrics.trusted_token_minted(user.workspace)
        log.info("trusted bearer token minted", extra={
            "workspace": user.workspace, "user": user.username, "token": record.public_id,
            "validity_seconds": request.validity_seconds})
        return Minted(token, user, record)

    async def _user(self, request: TokenRequest, ws: str) -> User:
        name = request.username
        user = await self.store.get_user(name)
        if user is None and request.auto_create:
            created = User(name, Role.MEMBER, ws, self.clock(), new_user_generation())
            try:
                await self.store.add_user(created)
            except AlreadyExists:
                user = await self.store.get_user(name)
            else:
                await self.lifecycle.audit("user.added", AUTO_CREATE_ACTOR, name, ws,
                                           role=Role.MEMBER.value, auto_create=True)
                return created
        if user is not None and user.workspace == ws:
            return user
        if user is not None and request.auto_create:
            raise Conflict(f"user {name!r} already exists")
        raise NotFound(f"no such user in this workspace: {name}")

    async def resolve_bearer(self, token: str) -> Identity:
        """The identity of ``Authorization: Bearer <token>`` (cached; else one store call)."""
        return trusted.bearer_identity(await self._credential(token), now=self.clock())

    async def validation(self, token: str) -> dict[str, Any]:
        """The ``/auth/token/validate`` body for a bearer (401 unless it is valid)."""
        credential = await self._credential(token)
        identity = trusted.bearer_identity(credential, now=self.clock())
        assert credential is not None and credential.owner is not None  # else 401 above
        key = await self.store.get_trusted_key(identity.workspace)
        return trusted.validation_response(credential.owner, credential.record,
                                           key.org_id if key is not None else None)

    async def _credential(self, token: str) -> BearerCredential | None:
        token_hash = self.keys.hash_secret(token)
        generation = self.cache.generation
        credential = self.cache.get(token_hash)
        if credential is None:
            start = time.perf_counter()
            failed = True
            try:
                credential = await self.store.load_bearer(token_hash)
                failed = False
            finally:
                if self.metrics is not None:
                    self.metrics.store_call("load_bearer", time.perf_counter() - start,
                                            failed=failed)
            if credential is not None:
                self.cache.put(token_hash, credential, generation=generation)
        return credential

    async def revoke_own(self, token: str, identity: Identity) -> None:
        """Revoke the bearer token the caller authenticated with."""
        record = await self.store.revoke_bearer(self.keys.hash_secret(token), at=self.clock())
        if record is not None:
            await self.lifecycle.audit("trusted_auth.token_revoked", identity.user,
                                       record.public_id, record.workspace, by="bearer")

    async def revoke_with_key(self, request: RevokeRequest, client: str, endpoint: str) -> None:
        """Revoke a bearer token of the workspace whose key the caller holds."""
        assert request.secret_key is not None
        key = await self.check_key(request.org, request.secret_key, client, endpoint)
        if request.token is None:
            raise Unprocessable("token: required", extra={"field": "token"})
        found = None
        if bearer_well_formed(request.token):
            token_hash = self.keys.hash_secret(request.token)
            found = await self.store.load_bearer(token_hash)
        if (found is None or found.record.workspace != key.workspace
                or request.user not in (None, found.record.user)):
            raise NotFound("no such token")
        record = await self.store.revoke_bearer(found.record.token_hash, at=self.clock())
        if record is not None:
            await self.lifecycle.audit("trusted_auth.token_revoked", "secret_key",
                                       record.public_id, record.workspace, by="secret_key",
                                       user=record.user)


def _bearer_user(credential: BearerCredential) -> str:
    return credential.record.user


def install(gw: Gateway) -> None:
    """Add trusted authentication to a gateway: the bearer hook and public endpoints."""
    service = TrustedAuth.of(gw)
    gw.authenticator.bearer = service.resolve_bearer
    gw.invalidation_listeners.append(service.cache.invalidate)
    gw.public_routes.extend(public_routes(gw, service))
