"""Every Prometheus metric tokengate exports, on one injectable registry.

Labels are low-cardinality by construction: closed sets (outcome, reason, mode,
token type) are checked, and open sets (route class, deny rule, store
operation, workspace) are capped, so a bug or a hostile client can never mint
an unbounded number of series. Never pass a raw path, a token, a username or
an address as a label value.

The hot path calls small methods (``request``, ``auth_failure``, ...) that look
up a cached child by tuple; ``.labels()`` runs only the first time a label
combination is seen.

Multiprocess mode (``--workers N > 1``): the server sets
``PROMETHEUS_MULTIPROC_DIR`` before it forks the workers; ``Metrics()`` then
writes to per-process files there, and ``exposition`` aggregates them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

import gateway
from gateway.policy.expiring import ExpiringCounts, no_expiring

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format, which every Prometheus and promtool version reads;
# all of tokengate's names are plain ASCII, so nothing needs the newer format.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

OUTCOMES: Final = (
    "allowed",
    "unauthenticated",
    "forbidden",
    "rate_limited",
    "bad_request",
    "upstream_error",
    "store_unavailable",
)
AUTH_FAILURE_REASONS: Final = (
    "malformed",
    "unknown",
    "bad_secret",
    "expired",
    "revoked",
    "disabled_feature",
    "deprecated",
)
DENY_MODES: Final = ("enforce", "dry-run")
# ``none`` is the token type of a request that never authenticated.
TOKEN_TYPES: Final = ("workspace", "member", "personal", "trusted", "none")
DEFAULT_ROUTE_CLASS: Final = "default"
UPSTREAM_STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx", "error")
ADMIN_REFUSED_REASONS: Final = ("wrong_key", "throttled", "wrong_host")
AUTHZ_PROTOCOLS: Final = ("nginx", "forwarded", "envoy")

# Open label sets keep at most this many distinct values; later ones share
# OVERFLOW_LABEL. Route classes and rules come from config, workspaces from the
# store, so a real deployment stays far below it.
MAX_LABEL_VALUES: Final = 200
OVERFLOW_LABEL: Final = "other"

# A sidecar answers in well under a millisecond when it rejects, and in
# upstream time when it forwards; the upstream timeout defaults to 30 s.
REQUEST_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
# Redis on the same network answers in 100 µs - a few ms; the store timeout is 2 s.
STORE_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)
# The contract is "revocation effective everywhere within 1 s".
REVOCATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """tokengate's metric objects, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if multiprocess_enabled():
            _use_multiprocess_values()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tokengate_requests_total",
            "Proxied requests by final outcome, token type and route class.",
            ["outcome", "token_type", "route_class"],
            registry=r,
        )
        self.auth_failures = Counter(
            "tokengate_auth_failures_total",
            "Requests refused with 401, by reason (never shown to the client).",
            ["reason"],
            registry=r,
        )
        self.denials = Counter(
            "tokengate_denials_total",
            "Requests matched by a deny rule, by rule name and mode (dry-run ones pass).",
            ["rule", "mode"],
            registry=r,
        )
        self.request_duration = Histogram(
            "tokengate_request_duration_seconds",
            "Whole-request time in the gateway, from first byte in to response end, by outcome.",
            ["outcome"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "tokengate_upstream_duration_seconds",
            "Time from sending a request upstream to its response headers, by status class.",
            ["status_class"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.store_duration = Histogram(
            "tokengate_store_duration_seconds",
            "Store (Redis) call time by operation.",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "tokengate_store_errors_total",
            "Store calls that failed (unreachable, timeout, protocol error), by operation.",
            ["operation"],
            registry=r,
        )
        self.in_flight = Gauge(
            "tokengate_in_flight_requests",
            "Proxied requests currently being handled.",
            registry=r,
            multiprocess_mode="livesum",
        )
        # Reasons are the closed set gateway.proxy.connections.CLOSE_REASONS.
        self.connections_closed = Counter(
            "tokengate_connections_closed_total",
            "Proxy connections the gateway cut, by reason (header/body timeout, evicted, refused).",
            ["reason"],
            registry=r,
        )
        self.revocation_delay = Histogram(
            "tokengate_revocation_delay_seconds",
            "Seconds from a token's revocation to the invalidation reaching this process.",
            buckets=REVOCATION_BUCKETS,
            registry=r,
        )
        self.trusted_minted = Counter(
            "tokengate_trusted_tokens_minted_total",
            "Bearer tokens minted through trusted authentication, by workspace.",
            ["workspace"],
            registry=r,
        )
        self.trusted_key_failures = Counter(
            "tokengate_trusted_key_failures_total",
            "Trusted-auth token requests refused for a wrong or disabled secret_key, by workspace.",
            ["workspace"],
            registry=r,
        )
        self.trusted_throttled = Counter(
            "tokengate_trusted_key_throttled_total",
            "Trusted-auth token requests answered 429: the source used up its secret_key budget.",
            registry=r,
        )
        self.audit_suppressed = Counter(
            "tokengate_audit_events_suppressed_total",
            "Security events folded into an earlier audit event instead of written "
            "(repeats from one source, or past a workspace's ceiling per interval).",
            registry=r,
        )
        self.admin_refusals = Counter(
            "tokengate_admin_refused_total",
            "Admin-listener requests refused: wrong_key (401), throttled (429, the address "
            "used up its admin-key budget), wrong_host (421, a Host not in admin.allowed_hosts).",
            ["reason"],
            registry=r,
        )
        # Shapes are gateway.policy.forwardauth.Shape values.
        self.authz_decisions = Counter(
            "tokengate_authz_decisions_total",
            "Forward-auth decisions answered, by the asking proxy's protocol "
            "(nginx, forwarded: Traefik and Caddy, envoy) and allowed true/false.",
            ["protocol", "allowed"],
            registry=r,
        )
        self.authz_untrusted = Counter(
            "tokengate_authz_untrusted_peers_total",
            "Decision requests refused (403) because the peer is not in authz.trusted_proxies.",
            registry=r,
        )
        # Refreshed from the store by gateway/expirywatch.py; every replica
        # publishes the same counts (one replica scans per interval).
        self.tokens_expiring = Gauge(
            "tokengate_tokens_expiring",
            "Active tokens that expire within 1, 7 or 30 days (cumulative), by token type; "
            "no workspace label (the admin API's expires_in_days says which).",
            ["token_type", "within"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.build_info = Gauge(
            "tokengate_build_info",
            "Always 1; the version label tells which tokengate build runs.",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(version=gateway.__version__).set(1)

        self._requests: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._auth_failures: dict[str, Any] = {}
        self._denials: dict[tuple[str, str], Any] = {}
        self._upstream: dict[str, Any] = {}
        self._store: dict[str, tuple[Any, Any]] = {}
        self._minted: dict[str, Any] = {}
        self._key_failures: dict[str, Any] = {}
        self._seen: dict[str, set[str]] = {}
        self._preinitialise()

    # -- set-up ------------------------------------------------------------

    def _preinitialise(self) -> None:
        """Create the closed label combinations so dashboards see zeros, not gaps."""
        self.declare_route_classes([DEFAULT_ROUTE_CLASS])
        for reason in AUTH_FAILURE_REASONS:
            self._auth_failure_child(reason)
        for status_class in UPSTREAM_STATUS_CLASSES:
            self._upstream_child(status_class)
        for reason in ADMIN_REFUSED_REASONS:
            self.admin_refusals.labels(reason)
        for protocol in AUTHZ_PROTOCOLS:
            for allowed in ("true", "false"):
                self.authz_decisions.labels(protocol, allowed)
        self.expiring(no_expiring())

    def declare_route_classes(self, names: Iterable[str]) -> None:
        """Pre-create request series for configured route classes (call on start and reload)."""
        for name in names:
            for outcome in OUTCOMES:
                for token_type in TOKEN_TYPES:
                    self._request_children(outcome, token_type, name)

    def declare_deny_rules(self, rules: Iterable[tuple[str, str]]) -> None:
        """Pre-create denial series for configured ``(rule name, mode)`` pairs."""
        for rule, mode in rules:
            self._denial_child(rule, mode)

    def declare_store_operations(self, operations: Iterable[str]) -> None:
        """Pre-create store latency and error series for the store's operations."""
        for operation in operations:
            self._store_children(operation)

    def declare_workspaces(self, workspaces: Iterable[str]) -> None:
        """Pre-create trusted-auth series for workspaces that have it enabled."""
        for ws in workspaces:
            self._minted_child(ws)
            self._key_failure_child(ws)

    # -- hot path ----------------------------------------------------------

    def request(self, outcome: str, token_type: str, route_class: str, seconds: float) -> None:
        """Count one finished request and observe its whole duration."""
        children = self._requests.get((outcome, token_type, route_class))
        if children is None:
            children = self._request_children(outcome, token_type, route_class)
        children[0].inc()
        children[1].observe(seconds)

    def auth_failure(self, reason: str) -> None:
        """Count one 401 by its (internal) reason."""
        child = self._auth_failures.get(reason)
        if child is None:
            child = self._auth_failure_child(reason)
        child.inc()

    def denied(self, rule: str, mode: str) -> None:
        """Count one request matched by deny rule ``rule`` in ``mode``."""
        child = self._denials.get((rule, mode))
        if child is None:
            child = self._denial_child(rule, mode)
        child.inc()

    def upstream(self, seconds: float, status: int | None) -> None:
        """Observe one upstream exchange; ``status`` None means it failed (refused, timeout)."""
        status_class = "error" if status is None else _STATUS_CLASS.get(status // 100, "error")
        self._upstream[status_class].observe(seconds)

    def store_call(self, operation: str, seconds: float, *, failed: bool = False) -> None:
        """Observe one store call; count it as an error too when ``failed``."""
        children = self._store.get(operation)
        if children is None:
            children = self._store_children(operation)
        children[0].observe(seconds)
        if failed:
            children[1].inc()

    def revocation_seen(self, revoked_at: float, now: float) -> None:
        """Observe how long a revocation took to reach this process (clock skew clamps to 0)."""
        self.revocation_delay.observe(max(0.0, now - revoked_at))

    def trusted_token_minted(self, workspace: str) -> None:
        """Count one bearer token minted for ``workspace`` (an existing workspace only)."""
        child = self._minted.get(workspace)
        if child is None:
            child = self._minted_child(workspace)
        child.inc()

    def trusted_key_failure(self, workspace: str) -> None:
        """Count one refused secret_key; pass only a workspace that exists, never client input."""
        child = self._key_failures.get(workspace)
        if child is None:
            child = self._key_failure_child(workspace)
        child.inc()

    def trusted_key_throttled(self) -> None:
        """Count one token request refused (429) before its secret_key was compared."""
        self.trusted_throttled.inc()

    def audit_event_suppressed(self) -> None:
        """Count one security event not written because an earlier one stands for it."""
        self.audit_suppressed.inc()

    def authz_decision(self, protocol: str, allowed: bool) -> None:
        """Count one forward-auth decision (``protocol`` one of AUTHZ_PROTOCOLS)."""
        self.authz_decisions.labels(protocol, "true" if allowed else "false").inc()

    def authz_untrusted_peer(self) -> None:
        """Count one decision request from a peer not allowed to ask."""
        self.authz_untrusted.inc()

    def expiring(self, counts: ExpiringCounts) -> None:
        """Publish the counts of tokens expiring soon (token types and horizons are closed sets)."""
        for (token_type, within), count in counts.items():
            self.tokens_expiring.labels(token_type, within).set(count)

    def admin_refused(self, reason: str) -> None:
        """Count one refused admin-listener request (a reason of ADMIN_REFUSED_REASONS)."""
        self.admin_refusals.labels(reason).inc()

    # -- cache misses ------------------------------------------------------

    def _bounded(self, family: str, value: str) -> str:
        """``value`` while the family has room, else OVERFLOW_LABEL (never cached by raw value)."""
        seen = self._seen.setdefault(family, set())
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return OVERFLOW_LABEL
        seen.add(value)
        return value

    def _request_children(self, outcome: str, token_type: str, route_class: str) -> tuple[Any, Any]:
        _check("outcome", outcome, OUTCOMES)
        _check("token_type", token_type, TOKEN_TYPES)
        bounded = self._bounded("route_class", route_class)
        children = (
            self.requests.labels(outcome, token_type, bounded),
            self.request_duration.labels(outcome),
        )
        if bounded == route_class:
            self._requests[(outcome, token_type, route_class)] = children
        return children

    def _auth_failure_child(self, reason: str) -> Any:
        _check("reason", reason, AUTH_FAILURE_REASONS)
        child = self._auth_failures[reason] = self.auth_failures.labels(reason)
        return child

    def _denial_child(self, rule: str, mode: str) -> Any:
        _check("mode", mode, DENY_MODES)
        bounded = self._bounded("rule", rule)
        child = self.denials.labels(bounded, mode)
        if bounded == rule:
            self._denials[(rule, mode)] = child
        return child

    def _upstream_child(self, status_class: str) -> Any:
        child = self._upstream[status_class] = self.upstream_duration.labels(status_class)
        return child

    def _store_children(self, operation: str) -> tuple[Any, Any]:
        bounded = self._bounded("operation", operation)
        children = (self.store_duration.labels(bounded), self.store_errors.labels(bounded))
        if bounded == operation:
            self._store[operation] = children
        return children

    def _minted_child(self, workspace: str) -> Any:
        bounded = self._bounded("workspace", workspace)
        child = self.trusted_minted.labels(bounded)
        if bounded == workspace:
            self._minted[workspace] = child
        return child

    def _key_failure_child(self, workspace: str) -> Any:
        bounded = self._bounded("workspace", workspace)
        child = self.trusted_key_failures.labels(bounded)
        if bounded == workspace:
            self._key_failures[workspace] = child
        return child


_STATUS_CLASS: Final = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def _check(label: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"metric label {label}={value!r} is not one of {', '.join(allowed)}")


_multiprocess_values = False


def _use_multiprocess_values() -> None:
    """Make metrics created from now on store their values in the shared directory.

    prometheus-client chooses its value storage once, when it is imported; the
    server sets PROMETHEUS_MULTIPROC_DIR later (just before forking workers),
    so switch the storage here, once: a second storage class would open the
    same files twice.
    """
    global _multiprocess_values
    if _multiprocess_values:
        return
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:  # imported before the variable was set
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _multiprocess_values = True


def multiprocess_enabled() -> bool:
    """Whether this process runs as one of several workers sharing a metrics directory."""
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its content type.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the per-process registry is ignored
    and every worker's files are aggregated instead (reading both would count
    this worker twice).
    """
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
        return generate_latest(aggregate), CONTENT_TYPE
    return generate_latest(registry), CONTENT_TYPE


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (in-flight) from the aggregate; call from the parent."""
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
