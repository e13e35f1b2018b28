"""Typed settings from a TOML file plus ``TOKENGATE_*`` environment overrides.

Everything is validated at start-up. A bad setting raises :class:`ConfigError`
with one line that names the key; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.servicelinks import is_service_link

ENV_PREFIX = "TOKENGATE_"
# Environment variables that are not settings of the file (secrets and process knobs).
NON_SETTING_ENV = frozenset(
    {
        "MASTER_KEY",
        "MASTER_KEY_FILE",
        "ADMIN_KEY_FILE",
        "CONFIG",
    }
)


class ConfigError(Exception):
    """A setting is wrong; the message is one line that names it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 in brackets) and check both parts."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host, _, port_s = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    elif not _is_hostname(host):
        raise ValueError(f"not a valid host in {value!r}")
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"port must be 0-65535 in {value!r}")
    return host, int(port_s)


def _is_hostname(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    )


class ListenSection(_Section):
    listen: str

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v


class TrustedPeers(_Section):
    """A section naming the peers whose forwarding headers are believed."""

    trusted_proxies: list[str] = Field(default_factory=list, max_length=256)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        # From the environment: TOKENGATE_PROXY_TRUSTED_PROXIES="10.0.0.0/8,192.0.2.7"
        return [item.strip() for item in v.split(",") if item.strip()] if isinstance(v, str) else v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for item in v:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return v

    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The trusted proxies as networks."""
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies)


class ProxySection(ListenSection, TrustedPeers):
    listen: str = "0.0.0.0:8080"
    max_header_bytes: int = Field(default=16384, ge=1024, le=1048576)
    assertion: bool = False
    assertion_ttl_seconds: int = Field(default=60, ge=10, le=3600)
    # The JWT ``aud``; unset, the upstream URL's origin (see Settings.assertion_audience).
    assertion_audience: str | None = Field(default=None, min_length=1, max_length=512)
    # X-HTTP-Method-Override and siblings: dropped before the upstream, or passed
    # on; the deny rules check the methods they name either way (policy/methods.py).
    method_override_headers: Literal["strip", "forward"] = "strip"
    # Connection hardening (gateway/proxy/connections.py and forward.py).
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    idle_timeout_seconds: float = Field(default=60.0, gt=0, le=86400)
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    body_min_rate_bytes: int = Field(default=1024, ge=0, le=1 << 30)
    max_connections: int = Field(default=10000, ge=1, le=1_000_000)


class AuthzSection(TrustedPeers):
    """The forward-auth decision endpoint (gateway/proxy/authz.py)."""

    enabled: bool = False
    # Envoy's ext_authz appends the original path to its path_prefix: the
    # endpoint answers every path under this prefix.
    path: str = Field(default="/_tokengate/authz", max_length=128,
                      pattern=r"^(/[A-Za-z0-9._~-]+)+$")
    # Only these peers' X-Original-* / X-Forwarded-* headers are believed;
    # anyone else gets 403.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"],
                                       min_length=1, max_length=256)


class AdminSection(ListenSection):
    listen: str = "127.0.0.1:9090"
    key: str | None = None
    # Host header names the admin listener answers besides loopback and its listen host.
    allowed_hosts: list[str] = Field(default_factory=list, max_length=256)
    # A lambda: AttemptLimit is defined further down.
    key_failures: AttemptLimit = Field(
        default_factory=lambda: AttemptLimit(limit=10, window_seconds=60))

    @field_validator("key")
    @classmethod
    def _strong(cls, v: str | None) -> str | None:
        from gateway.policy.keystrength import key_weakness

        weakness = None if v is None else key_weakness(v)
        if weakness is not None:
            raise ValueError(weakness)
        return v

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: Any) -> Any:
        # From the environment: TOKENGATE_ADMIN_ALLOWED_HOSTS="admin.internal,tokengate-admin"
        return [item.strip() for item in v.split(",") if item.strip()] if isinstance(v, str) else v

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        out = []
        for item in v:
            host = item.lower().removeprefix("[").removesuffix("]")
            if host != "*" and not _is_hostname(host):
                raise ValueError(f"not a host name or address: {item!r} (no port; '*' for any)")
            out.append(host)
        return out


class UpstreamSection(_Section):
    url: str = "http://127.0.0.1:3000"
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    max_connections: int = Field(default=1000, ge=1, le=100000)
    # The lean client (gateway/proxy/upstream.py) or aiohttp's, to fall back to.
    client: Literal["lean", "aiohttp"] = "lean"
    # Pooled connections unused this long are closed.
    idle_timeout_seconds: float = Field(default=30.0, gt=0, le=86400)
    # CA certificates (PEM) an https:// upstream's certificate must chain to;
    # unset, the system's.
    ca_file: str | None = None

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"no such file {v!r}")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme == "unix":
            if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
                raise ValueError(f"a unix socket upstream is unix:/absolute/path, got {v!r}")
            return v
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http://, https:// URL with a host or unix:/path, "
                             f"got {v!r}")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        try:
            _ = parts.port  # raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"bad port in {v!r}") from exc
        return v.rstrip("/")


STORE_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "rediss+cluster",
                 "memory")


class StoreSection(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    # No braces: Redis would take them for a hash tag and put every key of the
    # deployment in one cluster slot (the key layout tags workspaces itself).
    prefix: str = Field(default="tg:", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9:_.-]+$")
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Connections to Redis per process (the hot-path one aside); past this, calls
    # wait up to timeout_seconds for a free one instead of failing.
    max_connections: int = Field(default=100, ge=2, le=10_000)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in STORE_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(STORE_SCHEMES)}, got {v!r}")
        if parts.scheme == "redis+sentinel":
            from gateway.store.sentinel import parse_sentinel_url

            parse_sentinel_url(v)  # ValueError says what is wrong
            return v
        if parts.scheme in ("redis+cluster", "rediss+cluster"):
            from gateway.store.cluster import parse_cluster_url

            parse_cluster_url(v)  # ValueError says what is wrong
            return v
        if parts.scheme in ("redis", "rediss") and not parts.hostname:
            raise ValueError(f"a redis URL needs a host, got {v!r}")
        try:
            _ = parts.port  # raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"bad port in {v!r}") from exc
        return v


class TokensSection(_Section):
    default_expiry_days: int = Field(default=90, ge=1, le=3650)
    max_expiry_days: int = Field(default=365, ge=1, le=3650)

    @model_validator(mode="after")
    def _order(self) -> TokensSection:
        if self.default_expiry_days > self.max_expiry_days:
            raise ValueError("default_expiry_days must not exceed max_expiry_days")
        return self


class PersonalTokensSection(_Section):
    cutoff: dt.date = dt.date(2025, 2, 28)


class AttemptLimit(_Section):
    limit: int = Field(default=20, ge=1, le=1_000_000)
    window_seconds: float = Field(default=60, gt=0, le=86400)


class RateLimitSection(_Section):
    limit: int = Field(default=40, ge=1, le=1_000_000_000)
    window_seconds: float = Field(default=10, gt=0, le=86400)
    key: Literal["username", "user"] = "username"
    classes: list[dict[str, Any]] = Field(default_factory=list)
    auth_failures: AttemptLimit = AttemptLimit()


class TrustedAuthSection(_Section):
    default_validity_seconds: int = Field(default=300, ge=1)
    max_validity_seconds: int = Field(default=86400, ge=1)
    key_failures: AttemptLimit = AttemptLimit(limit=10, window_seconds=60)
    # Refused keys are audited as at most one event per source address (IPv6:
    # /64) and workspace per interval, and at most audit_events_per_interval
    # per workspace, so unauthenticated traffic cannot flush an audit log.
    audit_interval_seconds: float = Field(default=60, gt=0, le=86400)
    audit_events_per_interval: int = Field(default=10, ge=1, le=10_000)

    @model_validator(mode="after")
    def _order(self) -> TrustedAuthSection:
        if self.default_validity_seconds > self.max_validity_seconds:
            raise ValueError("default_validity_seconds must not exceed max_validity_seconds")
        return self


class LogSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    access: bool = True

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class CacheSection(_Section):
    ttl_seconds: float = Field(default=300, ge=0, le=3600)
    max_entries: int = Field(default=100_000, ge=0, le=10_000_000)
    # Token ids the store did not know, remembered briefly so a flood of made-up
    # tokens costs one store call each per TTL; creating a token forgets it everywhere.
    negative_ttl_seconds: float = Field(default=5, ge=0, le=300)
    negative_max_entries: int = Field(default=100_000, ge=0, le=10_000_000)


class LifecycleSection(_Section):
    grace_seconds: float = Field(default=20, ge=0, le=3600)
    # How often the tokengate_tokens_expiring gauge is refreshed (one replica scans the store).
    expiring_refresh_seconds: float = Field(default=300, ge=1, le=86400)


class Settings(_Section):
    """All of tokengate's settings. Every key is optional."""

    default_workspace: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    workspace_path: str | None = "/api/{workspace}/**"
    # Paths matching workspace_path that name no workspace: ThoughtSpot's REST API v2.
    workspace_path_except: list[str] = Field(default_factory=lambda: ["/api/rest/2.0/**"],
                                             max_length=64)
    proxy: ProxySection = ProxySection()
    authz: AuthzSection = AuthzSection()
    admin: AdminSection = AdminSection()
    upstream: UpstreamSection = UpstreamSection()
    store: StoreSection = StoreSection()
    tokens: TokensSection = TokensSection()
    personal_tokens: PersonalTokensSection = PersonalTokensSection()
    rate_limit: RateLimitSection = RateLimitSection()
    deny: list[dict[str, Any]] | None = None
    trusted_auth: TrustedAuthSection = TrustedAuthSection()
    log: LogSection = LogSection()
    cache: CacheSection = CacheSection()
    lifecycle: LifecycleSection = LifecycleSection()

    @field_validator("default_workspace")
    @classmethod
    def _one_case(cls, v: str) -> str:
        # Workspace names are created lower case and compared exactly; refused
        # rather than folded, so an existing "Default" in the store is noticed.
        if v != v.lower():
            raise ValueError(f"must be lower case like every workspace name ({v.lower()!r})")
        return v

    @field_validator("workspace_path_except", mode="before")
    @classmethod
    def _split_except(cls, v: Any) -> Any:
        # From the environment: TOKENGATE_WORKSPACE_PATH_EXCEPT="/api/rest/2.0/**,/x/**"
        return [item.strip() for item in v.split(",") if item.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _compile_policy(self) -> Settings:
        # Compile once here so a bad rule stops start-up with its name.
        compiled_policy(self)
        return self

    @functools.cached_property
    def assertion_audience(self) -> str:
        """The ``aud`` of identity assertions: configured, else the upstream URL's origin."""
        if self.proxy.assertion_audience is not None:
            return self.proxy.assertion_audience
        parts = urlsplit(self.upstream.url)
        if parts.scheme == "unix":
            return self.upstream.url  # no origin: the socket names the upstream
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def compiled_policy(settings: Settings) -> Any:
    """Compile deny rules, route classes and workspace scope from settings."""
    from gateway.policy.policyset import PolicySet

    return PolicySet.from_settings(
        deny=settings.deny,
        classes=settings.rate_limit.classes,
        default_limit=settings.rate_limit.limit,
        default_window=settings.rate_limit.window_seconds,
        workspace_path=settings.workspace_path,
        workspace_path_except=settings.workspace_path_except,
    )


def _model_of(field: Any) -> type[BaseModel] | None:
    """The settings model a field holds, if it holds one (a section or a nested block)."""
    ann = field.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _env_path(model: type[BaseModel], key: str, at: tuple[str, ...]) -> tuple[str, ...] | str:
    """The field path ``key`` spells in ``model``, nested blocks by their longest name first."""
    nested = sorted((n for n, f in model.model_fields.items() if _model_of(f)), key=len, reverse=True)
    for name in nested:
        if key.startswith(name + "_"):
            sub = _model_of(model.model_fields[name])
            assert sub is not None
            return _env_path(sub, key[len(name) + 1:], (*at, name))
    if key not in model.model_fields or key in nested:
        return f"unknown setting {'.'.join((*at, key))}"
    return (*at, key)


def _env_setting(name: str) -> tuple[str, ...] | str:
    """The settings path a ``TOKENGATE_*`` variable names, or why it names none.

    ``TOKENGATE_RATE_LIMIT_AUTH_FAILURES_LIMIT`` is ``rate_limit.auth_failures.limit``:
    sections and the blocks nested in them are matched longest name first.
    """
    return _env_path(Settings, name[len(ENV_PREFIX):].lower(), ())


def _setting_env(environ: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """The ``TOKENGATE_*`` variables meant as settings (not secrets or process knobs)."""
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):] not in NON_SETTING_ENV:
            yield name, value


def service_link_variables(environ: Mapping[str, str]) -> list[str]:
    """Names of the Kubernetes service-link variables :func:`env_overrides` skips."""
    return sorted(name for name, value in _setting_env(environ)
                  if isinstance(_env_setting(name), str) and is_service_link(name, value))


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Map ``TOKENGATE_<SECTION>_<KEY>`` variables onto nested settings keys.

    A variable that names no setting is an error, unless it is one Kubernetes
    writes for a Service such as ``tokengate-redis`` (gateway/servicelinks.py).
    """
    out: dict[str, Any] = {}
    for name, value in _setting_env(environ):
        path = _env_setting(name)
        if isinstance(path, str):
            if is_service_link(name, value):
                continue
            raise ConfigError(f"{name}: {path}")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


# Settings whose value is a secret: an error about one never echoes what was given.
SECRET_SETTINGS = frozenset({"admin.key"})
_SECRET_NAME = re.compile(r"secret|passw|(?:^|_)token$", re.IGNORECASE)
# The password of a URL's userinfo (greedy to the last "@" of the authority, since a
# password may hold an unencoded "@"), and secret-looking query parameters.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:?#]*:)[^\s/?#]*@")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:password|passwd|pass|pwd|secret|token|key)=)[^&#\s'\"]*", re.IGNORECASE)


def redacted_url(text: str) -> str:
    """``text`` with every URL password in it masked (``user:***@``, ``?password=***``)."""
    # Each pattern only where it can match: this runs on every log record.
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(r"\g<head>***", text)
    return text


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif loc in SECRET_SETTINGS or _SECRET_NAME.search(loc.rpartition(".")[2]):
        # Never echo a secret, even a malformed one (it may be the real key, mistyped).
        if isinstance(given, str) and given:
            msg = msg.replace(given, "***")
    elif "input" in err and not isinstance(given, dict) and repr(given) not in msg:
        msg = f"{msg} (got {given!r})"
    more = len(exc.errors()) - 1
    line = (f"{loc}: {msg}" if loc else msg) + (f" (and {more} more)" if more else "")
    return redacted_url(line)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the TOML file (if any), apply env then command-line overrides, validate."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); "
                              "save the config file as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    data = _merge(data, env_overrides(environ))
    admin_key_file = environ.get(ENV_PREFIX + "ADMIN_KEY_FILE")
    if admin_key_file:
        data = _merge(data, {"admin": {"key": read_secret_file(admin_key_file, "TOKENGATE_ADMIN_KEY_FILE")}})
    if overrides:
        data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    except ValueError as exc:  # a rule that failed to compile
        raise ConfigError(redacted_url(str(exc))) from None


def read_secret_file(path: str, what: str) -> str:
    """Read a secret from a file named in the environment."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        # Never echo the bytes: they are (part of) a secret.
        raise ConfigError(f"{what}: {path} is not UTF-8 text") from None
