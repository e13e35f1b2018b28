"""The ``tokengate`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson

from gateway import __version__, tokens_cli
from gateway.config import (
    ENV_PREFIX,
    ConfigError,
    Settings,
    load_settings,
    redacted_url,
    service_link_variables,
)
from gateway.keycheck import check_master_key
from gateway.keys import Keys, MasterKeyError, generate_master_key
from gateway.lifecycle import Lifecycle
from gateway.policy.errors import BadRequest, Problem, Unprocessable
from gateway.policy.model import Role, TokenStatus, TokenType
from gateway.policy.permissions import USERNAME, WORKSPACE, Actor
from gateway.store import Store, open_store
from gateway.store.base import StoreError

T = TypeVar("T")
EXIT_USAGE = 2
CONFIG_ENV = ENV_PREFIX + "CONFIG"
AUDIT_LIMIT_MAX = 1000  # as the admin API's GET /audit?limit=
log = logging.getLogger("tokengate")


def _int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` (to ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _username(text: str) -> str:
    """An argparse type: a username."""
    if not USERNAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"not a valid username: {text!r} (1-64 of letters, digits and _.@+-, not first)")
    return text


def _workspace(text: str) -> str:
    """An argparse type: a workspace name (folded later, where names enter)."""
    if not WORKSPACE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"not a valid workspace name: {text!r} (1-64 of letters, digits and _.-)")
    return text


def _common(p: argparse.ArgumentParser, *, store: bool = True) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file")
    if store:
        p.add_argument("--store", metavar="URL", help="store URL (redis://... or memory://)")
    p.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tokengate", description="A reverse-proxy authentication gateway for API tokens.")
    parser.add_argument("--version", action="version", version=f"tokengate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", metavar="FILE")
    serve.add_argument("--listen", metavar="HOST:PORT", help="proxy listener")
    serve.add_argument("--admin-listen", metavar="HOST:PORT", help="admin listener")
    serve.add_argument("--upstream", metavar="URL")
    serve.add_argument("--store", metavar="URL")
    serve.add_argument("--workers", type=_int_at_least(1), default=1, metavar="N")

    demo = sub.add_parser("demo", help="run a self-contained demo (memory store, echo upstream)")
    demo.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8080")
    demo.add_argument("--admin-listen", metavar="HOST:PORT", default="127.0.0.1:9090")

    sub.add_parser("keygen", help="print a new master key")

    config = sub.add_parser("config", help="configuration")
    csub = config.add_subparsers(dest="action", required=True)
    check = csub.add_parser("check", help="validate the configuration")
    check.add_argument("--config", metavar="FILE")

    user = sub.add_parser("user", help="manage users")
    usub = user.add_subparsers(dest="action", required=True)
    add = usub.add_parser("add")
    add.add_argument("username", type=_username)
    add.add_argument("--role", choices=["admin", "member"], required=True)
    add.add_argument("--workspace", type=_workspace)
    _common(add)
    lst = usub.add_parser("list")
    lst.add_argument("--workspace", type=_workspace)
    _common(lst)
    rm = usub.add_parser("remove")
    rm.add_argument("username", type=_username)
    _common(rm)

    token = sub.add_parser("token", help="manage API tokens")
    tsub = token.add_subparsers(dest="action", required=True)
    create = tsub.add_parser("create")
    create.add_argument("--type", choices=["workspace", "member"], required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--expires-in-days", type=_int_at_least(1), metavar="N")
    create.add_argument("--workspace", type=_workspace)
    create.add_argument("--actor", type=_username, metavar="USER", help="act as this user (needed for member tokens)")
    tokens_cli.add_create_options(create)
    _common(create)
    tlist = tsub.add_parser("list")
    tlist.add_argument("--type", choices=[t.value for t in TokenType])
    tlist.add_argument("--status", choices=[s.value for s in TokenStatus])
    tlist.add_argument("--workspace", type=_workspace)
    _common(tlist)
    revoke = tsub.add_parser("revoke")
    revoke.add_argument("token")
    _common(revoke)
    rall = tsub.add_parser("revoke-all")
    rall.add_argument("--type", choices=["workspace", "member", "personal"])
    rall.add_argument("--workspace", type=_workspace)
    _common(rall)
    imp = tsub.add_parser("import-personal", help="import a legacy personal token")
    imp.add_argument("--token", required=True)
    imp.add_argument("--secret", required=True)
    imp.add_argument("--user", type=_username, required=True)
    _common(imp)
    tokens_cli.add_commands(tsub, _common, _int_at_least)

    mt = sub.add_parser("member-tokens", help="switch the member-token feature")
    mt.add_argument("action", choices=["enable", "disable"])
    mt.add_argument("--workspace", type=_workspace)
    _common(mt)

    audit = sub.add_parser("audit", help="recent lifecycle and security events")
    audit.add_argument("--limit", type=_int_at_least(1, AUDIT_LIMIT_MAX), default=50,
                       metavar="N")
    audit.add_argument("--workspace", type=_workspace)
    _common(audit)

    ta = sub.add_parser("trusted-auth", help="trusted authentication keys")
    ta.add_argument("action", choices=["enable", "disable", "show"])
    ta.add_argument("--workspace", type=_workspace, required=True)
    ta.add_argument("--org-id", type=int, metavar="N",
                    help="with enable: the workspace's numeric ThoughtSpot org id (0 = primary)")
    _common(ta)

    from gateway.store.migrate import add_parser as add_store_parser

    add_store_parser(sub, _common)  # tokengate store migrate
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings overrides from command-line flags (which beat file and environment)."""
    out: dict[str, Any] = {}
    for section, key, value in (
        ("store", "url", getattr(args, "store", None)),
        ("proxy", "listen", getattr(args, "listen", None)),
        ("admin", "listen", getattr(args, "admin_listen", None)),
        ("upstream", "url", getattr(args, "upstream", None)),
    ):
        if value:
            out[section] = {key: value}
    return out


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(text)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[str(r.get(c) if r.get(c) is not None else "-") for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _open_store(settings: Settings) -> Store:
    return open_store(settings.store.url, prefix=settings.store.prefix,
                      timeout=settings.store.timeout_seconds,
                      max_connections=settings.store.max_connections)


async def _with_lifecycle(settings: Settings,
                          fn: Callable[[Lifecycle], Awaitable[T]]) -> T:
    keys = Keys.from_env()
    store = _open_store(settings)
    try:
        await check_master_key(store, keys)
        return await fn(Lifecycle(store, keys, settings))
    finally:
        await store.close()


async def _key_checked(settings: Settings, keys: Keys) -> bool:
    """Check the master key against the store; False if the store is unreachable."""
    store = _open_store(settings)
    try:
        await check_master_key(store, keys)
        return True
    except StoreError as exc:
        log.warning("the store is unavailable; the master key is checked once it answers",
                    extra={"error": redacted_url(str(exc))})
        return False
    finally:
        await store.close()


async def _store_command(args: argparse.Namespace, settings: Settings) -> int:
    op = Actor.operator()
    cmd, action = args.command, getattr(args, "action", None)

    async def run(lc: Lifecycle) -> int:
        now = lc.clock()
        if cmd == "user" and action == "add":
            user = await lc.add_user(op, args.username, Role(args.role), args.workspace)
            _print(args, user.to_json(), f"added {user.role.value} {user.username} "
                   f"to workspace {user.workspace}")
        elif cmd == "user" and action == "list":
            users = [u.to_json() for u in await lc.list_users(op, args.workspace)]
            _print(args, users, _table(users, ["username", "role", "workspace", "created_at"]))
        elif cmd == "user" and action == "remove":
            n = await lc.remove_user(op, args.username)
            _print(args, {"username": args.username, "tokens_revoked": n},
                   f"removed {args.username}; revoked {n} token(s)")
        elif cmd == "token" and action == "create":
            actor = await lc.resolve_actor(args.actor) if args.actor else op
            new = await lc.create_token(actor, TokenType(args.type), args.name,
                                        expires_in_days=args.expires_in_days,
                                        workspace=args.workspace,
                                        **tokens_cli.create_restrictions(args))
            doc = {**new.record.to_json(now), "secret": new.secret}
            _print(args, doc, f"token:  {new.record.token}\nsecret: {new.secret}\n"
                   f"(the secret is shown only this once)\nexpires: {doc['expires_at']}")
        elif cmd == "token" and action == "list":
            records = await lc.list_tokens(
                op, token_type=TokenType(args.type) if args.type else None,
                status=TokenStatus(args.status) if args.status else None,
                workspace=args.workspace)
            rows = [r.to_json(now) for r in records]
            _print(args, rows, _table(rows, ["token", "type", "name", "owner", "created_by",
                                             "last_used_at", "expires_at", "status"]))
        elif cmd == "token" and action == "revoke":
            record = await lc.revoke_token(op, args.token)
            _print(args, record.to_json(now), f"revoked {record.token}")
        elif cmd == "token" and action == "revoke-all":
            n = await lc.revoke_all(op, TokenType(args.type) if args.type else None,
                                    args.workspace)
            _print(args, {"revoked": n}, f"revoked {n} token(s)")
        elif cmd == "token" and action in ("roll", "rate-limit"):
            return await tokens_cli.token_command(lc, args, _print)
        elif cmd == "token" and action == "import-personal":
            record = await lc.import_personal(args.token, args.secret, args.user)
            _print(args, record.to_json(now), f"imported personal token {record.token}")
        elif cmd == "member-tokens":
            s = await lc.set_member_tokens(op, args.action == "enable", args.workspace)
            _print(args, s.to_json(), f"member tokens {args.action}d")
        elif cmd == "audit":
            events = [e.to_json() for e in await lc.list_audit(op, args.limit, args.workspace)]
            _print(args, events, _table(events, ["at", "event", "actor", "subject", "workspace"]))
        elif cmd == "trusted-auth":
            from gateway.trusted.cli import trusted_auth_command

            return await trusted_auth_command(lc, args, _print)
        return 0

    return await _with_lifecycle(settings, run)


def _serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.runtime import Gateway
    from gateway.server import check_workers, install_uvloop, run_workers, serve_until_signalled

    overrides = _overrides(args)
    settings = load_settings(args.config, overrides=overrides)
    keys = Keys.from_env()
    check_workers(settings, args.workers)
    configure_logging(settings.log.level, settings.log.format)
    links = service_link_variables(os.environ)
    if links:
        log.debug("ignored Kubernetes service-link variables (set enableServiceLinks: false)",
                  extra={"variables": links})
    # Before any worker starts, so a wrong key is one clear line and exit 2.
    key_checked = asyncio.run(_key_checked(settings, keys))

    def child() -> int:
        install_uvloop()

        async def main() -> int:
            gw = Gateway(settings, keys, _open_store(settings))
            return await serve_until_signalled(gw, config_path=args.config, overrides=overrides,
                                               reuse_port=args.workers > 1,
                                               check_key=not key_checked)

        return asyncio.run(main())

    if args.workers == 1:
        return child()
    return run_workers(args.workers, child)


def _config_path(args: argparse.Namespace) -> str | None:
    """The config file: ``--config``, else ``TOKENGATE_CONFIG``, else none."""
    return getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokengate`` command."""
    args = build_parser().parse_args(argv)
    if hasattr(args, "config"):
        args.config = _config_path(args)
    if args.command not in ("serve", "demo"):
        # Failures reach the user as one ``tokengate:`` line each, never as
        # a stray log record on stderr beside it.
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        if args.command == "keygen":
            print(generate_master_key())
            return 0
        if args.command == "config":
            settings = load_settings(args.config)
            print(f"config ok: proxy {settings.proxy.listen}, admin {settings.admin.listen}, "
                  f"upstream {redacted_url(settings.upstream.url)}, "
                  f"store {redacted_url(settings.store.url)}")
            return 0
        if args.command == "serve":
            return _serve(args)
        if args.command == "demo":
            from gateway.demo import run_demo

            return run_demo(args.listen, args.admin_listen)
        settings = load_settings(args.config, overrides=_overrides(args))
        if args.command == "store":  # before any key or layout check: it fixes the layout
            from gateway.store.migrate import store_command

            return asyncio.run(store_command(args, settings))
        return asyncio.run(_store_command(args, settings))
    except (ConfigError, MasterKeyError) as exc:
        print(f"tokengate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (BadRequest, Unprocessable) as exc:
        # A value the parser could not judge (a username, a range from the
        # settings): a usage error like argparse's own.
        print(f"tokengate: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    except Problem as exc:
        print(f"tokengate: {exc.detail}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"tokengate: the store is unavailable ({redacted_url(str(exc))})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
