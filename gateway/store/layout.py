"""Every Redis key name the store uses, built here and nowhere else.

One layout for a single Redis, Sentinel and Redis Cluster (hash tags cost
nothing on a single server). The workspace is the unit of atomicity:
everything a workspace owns shares the hash tag ``{ws:<workspace>}``, so one
script can change any of it at once on every kind of deployment.

Layout 2 (prefix ``tg:`` by default):

* ``tg:{ws:<ws>}:tok:<token>`` token hash; ``tg:{ws:<ws>}:tokens`` zset (by
  creation time); ``tg:{ws:<ws>}:owner:<name>`` set of the tokens a user owns
* ``tg:{ws:<ws>}:user:<name>`` user hash; ``tg:{ws:<ws>}:users`` set
* ``tg:{ws:<ws>}:settings`` hash; ``tg:{ws:<ws>}:trusted`` hash (encrypted
  trusted-auth key, its generation, org id); ``tg:{ws:<ws>}:audit`` capped list
* directory entries, each its own tag, for ids that arrive without their
  workspace: ``tg:dir:{tok:<token>}`` hash (workspace, owner; written once),
  ``tg:dir:{user:<name>}`` hash (the workspace),
  ``tg:dir:{org:<n>}`` hash (the workspace holding numeric org id n); each
  entry also holds its claim and when it was written (see ``dir_claim.lua``)
* ``tg:workspaces`` set: every workspace that holds anything (for listings
  across workspaces); ``tg:security:audit`` capped list of events of no workspace
* ``tg:rl:{<key>}`` sliding-window zsets (see ``ratelimit.lua``); a subject's
  windows are ``tg:rl:<class>:{<subject>}`` and ``tg:rl:token:<id>:{<subject>}``
  (one slot, so a user's and a token's own window are judged in one script)
* ``tg:lease:{<name>}`` strings (short leases, SET NX PX) and the ``tg:expiring``
  hash (counts of tokens expiring soon, for the gauge)
* ``tg:tb:{<hash>}`` hash per trusted-auth bearer token, expiring with it
* channel ``tg:invalidate`` for cache invalidations (classic pub/sub: a
  cluster delivers it on every node)
* ``tg:keycheck`` string: the master key's check value (never the key);
  ``tg:layout`` string: this layout's version

Redis hashes only the part between the first ``{`` and the next ``}``, so
no name may bring its own braces: ``store.prefix`` refuses them (config), and
usernames, workspaces and token ids cannot contain them.

Layout 1 (:class:`LegacyLayout`, of earlier versions): the same records under
untagged names; ``tokengate store migrate`` (``gateway/store/migrate.py``)
converts it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from gateway.keys import MasterKeyError

VERSION = "2"


class StoreMismatch(MasterKeyError):
    """The store is not what this process can use: another layout version, or
    another kind of Redis than the URL says.

    A :class:`MasterKeyError` so every path that refuses a store set up with
    another master key (``serve`` at start, ``serve`` once the store first
    answers, every store command) refuses this one the same way: one line
    saying what to do, exit status 2.
    """


def new_claim() -> str:
    """A directory entry's claim: new for every write, so a stale entry is replaced
    (or released) exactly, never a newer one written meanwhile."""
    return secrets.token_hex(8)


def tag(value: str) -> str:
    """A hash tag: ``value`` decides the slot of every key that carries it."""
    return "{" + value + "}"


@dataclass(frozen=True, slots=True)
class Layout:
    """Key names under one prefix (layout :data:`VERSION`)."""

    prefix: str = "tg:"

    @property
    def channel(self) -> str:
        """The pub/sub channel of cache invalidations."""
        return self.prefix + "invalidate"

    @property
    def key_check(self) -> str:
        """The master key's check value."""
        return self.prefix + "keycheck"

    @property
    def version(self) -> str:
        """The layout version the store was written with."""
        return self.prefix + "layout"

    # a workspace's own keys: all in the workspace's slot
    def ws(self, workspace: str, what: str) -> str:
        """A workspace's ``tokens``, ``users``, ``settings``, ``trusted`` or ``audit``."""
        return f"{self.prefix}{tag('ws:' + workspace)}:{what}"

    def token(self, workspace: str, token: str) -> str:
        """A token's record (hash)."""
        return self.ws(workspace, "tok:" + token)

    def user(self, workspace: str, username: str) -> str:
        """A user's record (hash)."""
        return self.ws(workspace, "user:" + username)

    def owner_tokens(self, workspace: str, username: str) -> str:
        """The tokens a user owns (set)."""
        return self.ws(workspace, "owner:" + username)

    # directory entries: where an id that arrives alone lives
    def token_dir(self, token: str) -> str:
        """A token's workspace and owner (hash, written once)."""
        return f"{self.prefix}dir:{tag('tok:' + token)}"

    def user_dir(self, username: str) -> str:
        """A user's workspace and generation (hash)."""
        return f"{self.prefix}dir:{tag('user:' + username)}"

    def org_dir(self, org_id: int) -> str:
        """The workspace holding a numeric org id (string)."""
        return f"{self.prefix}dir:{tag(f'org:{org_id}')}"

    # across workspaces
    @property
    def workspaces(self) -> str:
        """Every workspace that holds anything (set)."""
        return self.prefix + "workspaces"

    def lease(self, name: str) -> str:
        """A short lease (string, SET NX PX): one replica runs ``name`` per interval."""
        return f"{self.prefix}lease:{tag(name)}"

    @property
    def expiring(self) -> str:
        """Counts of tokens expiring soon (hash), kept by the lease holder for the gauge."""
        return self.prefix + "expiring"

    def audit(self, workspace: str) -> str:
        """A workspace's audit list, or the security list for events of no workspace."""
        return self.ws(workspace, "audit") if workspace else self.prefix + "security:audit"

    def rate_limit(self, key: str) -> str:
        """A sliding window of admissions (zset).

        A key that carries its own hash tag (``policy.ratelimit.window_key``: a
        subject's windows, every class and a token's own limit) keeps it, so the
        script judging a user's and a token's window together stays in one slot.
        """
        if "{" in key and "}" in key.partition("{")[2]:
            return f"{self.prefix}rl:{key}"
        return f"{self.prefix}rl:{tag(key)}"

    def bearer(self, token_hash: str) -> str:
        """A trusted-auth bearer token (hash, expiring with the token)."""
        return f"{self.prefix}tb:{tag(token_hash)}"


@dataclass(frozen=True, slots=True)
class LegacyLayout:
    """Key names of layout 1, read only by ``tokengate store migrate``.

    Rate-limit windows, bearer tokens, the key check, the channel and the
    workspaces set kept their names in layout 2.
    """

    prefix: str = "tg:"

    def token(self, token: str) -> str:
        """``tg:tok:{<token>}``: a token's record."""
        return f"{self.prefix}tok:{tag(token)}"

    def user(self, username: str) -> str:
        """``tg:user:<name>``: a user's record."""
        return f"{self.prefix}user:{username}"

    def ws(self, workspace: str, what: str) -> str:
        """``tg:ws:<ws>:<what>``: users, tokens, settings, trusted, audit."""
        return f"{self.prefix}ws:{workspace}:{what}"

    def org_dir(self, org_id: int) -> str:
        """``tg:orgid:<n>``: the workspace holding an org id."""
        return f"{self.prefix}orgid:{org_id}"

    @property
    def security_audit(self) -> str:
        """``tg:audit:security``: events of no workspace."""
        return self.prefix + "audit:security"

    @property
    def single_audit(self) -> str:
        """``tg:audit``: the one list of versions before per-workspace lists."""
        return self.prefix + "audit"

    @property
    def audit_workspaces(self) -> str:
        """``tg:audit:workspaces``: the workspaces with an audit list."""
        return self.prefix + "audit:workspaces"

    @property
    def all_users(self) -> str:
        """``tg:users``: every username."""
        return self.prefix + "users"

    def patterns(self) -> list[str]:
        """SCAN patterns matching every layout-1 key that layout 2 renamed."""
        p = self.prefix
        return [f"{p}tok:{{*}}", f"{p}user:*", f"{p}ws:*", f"{p}owner:*", f"{p}orgid:*",
                f"{p}users", f"{p}audit", f"{p}audit:security", f"{p}audit:workspaces"]
