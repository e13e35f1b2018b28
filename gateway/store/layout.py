"""Every Redis key name the store uses, built here and nowhere else.

Key layout (prefix ``tg:`` by default):

* ``tg:user:<name>`` hash; ``tg:users`` and ``tg:ws:<ws>:users`` sets
* ``tg:tok:{<token>}`` hash; ``tg:ws:<ws>:tokens`` zset (by creation time);
  ``tg:owner:<name>:tokens`` set
* ``tg:ws:<ws>:settings`` hash; ``tg:ws:<ws>:audit`` and ``tg:audit:security``
  capped lists; ``tg:audit:workspaces`` names the workspaces with a list;
  ``tg:workspaces`` every workspace that holds anything
* ``tg:rl:{<key>}`` sliding-window zsets (see ``ratelimit.lua``)
* ``tg:ws:<ws>:trusted`` hash (encrypted trusted-auth key, its generation, org id);
  ``tg:orgid:<n>`` string (the workspace holding numeric org id n);
  ``tg:tb:{<hash>}`` hash per trusted-auth bearer token, expiring with it
* channel ``tg:invalidate`` for cache invalidations
* ``tg:keycheck`` string: the master key's check value (never the key)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Layout:
    """Key names under one prefix."""

    prefix: str = "tg:"

    @property
    def channel(self) -> str:
        """The pub/sub channel of cache invalidations."""
        return self.prefix + "invalidate"

    @property
    def key_check(self) -> str:
        """The master key's check value."""
        return self.prefix + "keycheck"

    def token(self, token: str) -> str:
        """A token's record (hash)."""
        return f"{self.prefix}tok:{{{token}}}"

    def user(self, username: str) -> str:
        """A user's record (hash)."""
        return f"{self.prefix}user:{username}"

    @property
    def all_users(self) -> str:
        """Every username (set)."""
        return self.prefix + "users"

    def workspace(self, workspace: str, what: str) -> str:
        """A workspace's ``users`` set, ``tokens`` zset, ``settings``/``trusted`` hash,
        ``audit`` list."""
        return f"{self.prefix}ws:{workspace}:{what}"

    def owner_tokens(self, username: str) -> str:
        """The tokens a user owns (set)."""
        return f"{self.prefix}owner:{username}:tokens"

    @property
    def workspaces(self) -> str:
        """Every workspace that holds anything (set)."""
        return self.prefix + "workspaces"

    def audit(self, workspace: str) -> str:
        """A workspace's audit list, or the security list for events of no workspace."""
        return self.workspace(workspace, "audit") if workspace else self.prefix + "audit:security"

    @property
    def audit_workspaces(self) -> str:
        """The workspaces that have an audit list (set)."""
        return self.prefix + "audit:workspaces"

    @property
    def legacy_audit(self) -> str:
        """The single audit list of older versions (still read)."""
        return self.prefix + "audit"

    def org_id(self, org_id: int) -> str:
        """The workspace holding a numeric org id (string)."""
        return f"{self.prefix}orgid:{org_id}"

    def bearer(self, token_hash: str) -> str:
        """A trusted-auth bearer token (hash, expiring with the token)."""
        return f"{self.prefix}tb:{{{token_hash}}}"

    def rate_limit(self, key: str) -> str:
        """A sliding window of admissions (zset)."""
        return f"{self.prefix}rl:{{{key}}}"
