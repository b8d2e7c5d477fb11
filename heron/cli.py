"""The `heron` command: thin subcommands over core and storage.

Exit codes: 0 success, 1 a refused operation (bad JID, existing or missing user),
2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from heron import __version__
from heron.config import ConfigError, ServerConfig, load_config
from heron.core.accounts import AccountService, UserExists, UserNotFound
from heron.core.server import load_secret
from heron.jid import JID, InvalidJID
from heron.log import setup_logging
from heron.modules import AVAILABLE
from heron.modules.antispam import SqlQuarantineStore
from heron.modules.blocking.store import SqlBlockingStore
from heron.modules.register.store import SqlInvitationStore
from heron.ops.cli import add_admin_commands, add_data_commands, data_dir_only
from heron.storage import StorageUnavailable, open_database
from heron.storage.accounts import SqlAccountStore
from heron.storage.db import Database, SqlStore
from heron.storage.fast import FastTokenStore
from heron.tls import check_certificate, ensure_certificate

S = TypeVar("S", bound=SqlStore)
T = TypeVar("T")


class CliError(Exception):
    """A refused operation, reported on stderr with exit code 1."""


def _run_uvloop(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # optional speed-up, absent on some platforms

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CliError("the passwords do not match")
    if not password:
        raise CliError("an empty password is not allowed")
    return password


def _account_jid(config: ServerConfig, text: str) -> JID:
    try:
        jid = JID.parse_account(text)
    except InvalidJID as exc:
        raise CliError(str(exc)) from exc
    if config.host(jid.domain) is None:
        raise CliError(f"{jid.domain} is not a host of this server")
    return jid


async def _open(config: ServerConfig) -> Database:
    """The configured database (StorageUnavailable names the key when it cannot be used)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return await open_database(config.storage, config.data_dir)


async def _with_accounts(
    config: ServerConfig,
    action: Callable[[AccountService], Awaitable[None]],
    revoke_tokens: JID | None = None,
) -> None:
    """Run ``action``; then, if named, forget that account's FAST tokens (XEP-0484). What
    modules keep of an account goes with its row (foreign keys that cascade)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = await _open(config)
    try:
        await db.migrate(SqlAccountStore.migrations_for(db.dialect))
        secret = load_secret(config.server_secret_file or config.data_dir / "secret")
        await action(AccountService(SqlAccountStore(db), secret, config.scram_iterations))
        if revoke_tokens is not None:
            await db.migrate(FastTokenStore.migrations_for(db.dialect))
            await FastTokenStore(db).revoke(revoke_tokens.local or "", revoke_tokens.domain)
    finally:
        await db.close()


def cmd_serve(config: ServerConfig, args: argparse.Namespace) -> int:
    from heron.ops.run import serve  # keeps the account commands light

    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    if args.workers > 1:
        from heron.supervisor import supervise

        return supervise(args.config, config, args.workers)
    if args.node:
        if config.cluster is None:
            raise CliError("--node needs a [cluster] table in the configuration")
        config = dataclasses.replace(
            config, cluster=dataclasses.replace(config.cluster, node=args.node)
        )
    _run_uvloop(serve(config, args.config, reuse_port=args.reuse_port))
    return 0


def cmd_check(config: ServerConfig, args: argparse.Namespace) -> int:
    problems = []
    for host in config.hosts:
        if host.cert is not None:
            problems += [f"{host.domain}: {p}" for p in check_certificate(host.cert, host.domain)]

    async def reach_storage() -> None:
        db = await _open(config)
        await db.close()

    asyncio.run(reach_storage())  # StorageUnavailable: one line, exit 2 (see main)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 2
    print(f"configuration OK: {len(config.hosts)} host(s), {len(config.listeners)} listener(s)")
    return 0


def cmd_adduser(config: ServerConfig, args: argparse.Namespace) -> int:
    jid = _account_jid(config, args.jid)
    _store_password(config, jid, _read_password(args), create=True)
    print(f"created {jid}")
    return 0


def cmd_passwd(config: ServerConfig, args: argparse.Namespace) -> int:
    jid = _account_jid(config, args.jid)
    _store_password(config, jid, _read_password(args), create=False)
    print(f"password changed for {jid}")
    return 0


def _store_password(config: ServerConfig, jid: JID, password: str, *, create: bool) -> None:
    """Create the account, or change the password of an existing one. A new account starts
    with no FAST tokens (any left by an earlier account of that name are revoked)."""

    async def act(accounts: AccountService) -> None:
        try:
            if create:
                await accounts.create(jid, password)
            else:
                await accounts.set_password(jid, password)
        except UserExists as exc:
            raise CliError(f"{jid} already exists") from exc
        except UserNotFound as exc:
            raise CliError(f"{jid} does not exist") from exc
        except ValueError as exc:
            raise CliError(f"unusable password: {exc}") from exc

    asyncio.run(_with_accounts(config, act, revoke_tokens=jid if create else None))


def cmd_deluser(config: ServerConfig, args: argparse.Namespace) -> int:
    jid = _account_jid(config, args.jid)

    async def act(accounts: AccountService) -> None:
        try:
            await accounts.delete(jid)
        except UserNotFound as exc:
            raise CliError(f"{jid} does not exist") from exc

    asyncio.run(_with_accounts(config, act, revoke_tokens=jid))
    asyncio.run(_forget_stored(config, jid))
    print(f"deleted {jid}")
    return 0


async def _forget_stored(config: ServerConfig, jid: JID) -> None:
    """What the account's host keeps for it goes with it: roster and last activity,
    offline messages, archive, its affiliations and subscriptions on pubsub nodes (as the
    modules do on an in-band removal)."""
    from heron.modules.mam.store import SqlArchiveStore
    from heron.modules.offline.store import SqlOfflineStore
    from heron.modules.pubsub.store import SqlPubsubStore
    from heron.modules.roster.store import SqlRosterStore

    enabled = next((h.modules for h in config.hosts if h.domain == jid.domain), ())
    local = jid.local or ""
    db = await _open(config)
    try:
        if "roster" in enabled:
            await db.migrate(SqlRosterStore.migrations_for(db.dialect))
            await SqlRosterStore(db).forget(local, jid.domain)
        if "offline" in enabled:
            await db.migrate(SqlOfflineStore.migrations_for(db.dialect))
            await SqlOfflineStore(db).forget(local, jid.domain)
        if "mam" in enabled:
            await db.migrate(SqlArchiveStore.migrations_for(db.dialect))
            await SqlArchiveStore(db).forget(jid.domain, local)
        if "pubsub" in enabled:  # its PEP went with its row; whoever takes the name later
            await db.migrate(SqlPubsubStore.migrations_for(db.dialect))  # inherits no node
            await SqlPubsubStore(db).forget_entity(jid)
    finally:
        await db.close()


def cmd_users(config: ServerConfig, args: argparse.Namespace) -> int:
    found: list[JID] = []

    async def act(accounts: AccountService) -> None:
        found.extend(await accounts.users(args.domain))

    asyncio.run(_with_accounts(config, act))
    for jid in found:
        print(jid)
    return 0


def _with_store(config: ServerConfig, cls: type[S], act: Callable[[S], Awaitable[T]]) -> T:
    """Run ``act`` on one store over the configured database (either engine), with its
    schema (and the accounts' its rows may point at) brought up to date first."""

    async def run() -> T:
        db = await _open(config)
        try:
            await db.migrate(
                [*SqlAccountStore.migrations_for(db.dialect), *cls.migrations_for(db.dialect)]
            )
            return await act(cls(db))
        finally:
            await db.close()

    return asyncio.run(run())


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_reports(config: ServerConfig, args: argparse.Namespace) -> int:
    """XEP-0377 spam and abuse reports users attached to blocks."""

    async def lines(store: SqlBlockingStore, domain: str) -> list[str]:
        found = []
        for r in await store.reports(domain):
            ids = f" messages: {', '.join(r.stanza_ids)}" if r.stanza_ids else ""
            text = f" text: {r.text!r}" if r.text else ""
            found.append(
                f"{_when(r.at)} {r.reporter} reported {r.reported} ({r.reason}){text}{ids}"
            )
        return found

    return _print_per_host(config, args, SqlBlockingStore, lines)


def cmd_quarantine(config: ServerConfig, args: argparse.Namespace) -> int:
    """Messages and requests from strangers held back (antispam ``strangers = quarantine``)."""

    async def lines(store: SqlQuarantineStore, domain: str) -> list[str]:
        return [
            f"{_when(held.at)} for {held.username}@{domain} from {held.sender}: {held.xml}"
            for held in await store.held(domain)
        ]

    return _print_per_host(config, args, SqlQuarantineStore, lines)


def _print_per_host(
    config: ServerConfig,
    args: argparse.Namespace,
    cls: type[S],
    lines: Callable[[S, str], Awaitable[list[str]]],
) -> int:
    """Print what ``lines`` finds in one store for ``--domain``, or for every host."""
    domains = [args.domain] if args.domain else [h.domain for h in config.hosts]

    async def read(store: S) -> list[str]:
        return [line for domain in domains for line in await lines(store, domain)]

    for line in _with_store(config, cls, read):
        print(line)
    return 0


def cmd_invite(config: ServerConfig, args: argparse.Namespace) -> int:
    """An invitation token for in-band registration (XEP-0445), and its xmpp: URI."""
    if config.host(args.domain) is None:
        raise CliError(f"{args.domain} is not a host of this server")
    if args.uses < 1 or args.days <= 0:
        raise CliError("--uses must be ≥ 1 and --days > 0")
    expires = time.time() + args.days * 86400

    async def make(store: SqlInvitationStore) -> str:
        return await store.create(args.domain, args.uses, expires)

    token = _with_store(config, SqlInvitationStore, make)
    print(f"token: {token}\nuri: xmpp:{args.domain}?register;preauth={token}")
    print(f"valid for {args.uses} account(s) until {_when(expires)}")
    return 0


def cmd_migrate(config: ServerConfig, args: argparse.Namespace) -> int:
    """Bring the database's schema up to this version (before a rolling restart)."""
    from heron.core.server import Server

    async def run() -> str:
        db = await _open(config)
        try:
            await db.migrate(Server(config, AVAILABLE).migrations(db.dialect))
        finally:
            await db.close()
        return db.dialect

    dialect = asyncio.run(run())
    print(f"schema up to date ({dialect})")
    return 0


def cmd_copy_storage(config: ServerConfig, args: argparse.Namespace) -> int:
    """Copy this deployment's data into the database another config names."""
    from heron.core.server import Server
    from heron.storage.copy import Engine, TargetNotEmpty, copy_storage

    try:
        other = load_config(args.to, known_modules=AVAILABLE)
    except ConfigError as exc:
        raise CliError(f"--to: {exc}") from exc
    if other.storage == config.storage and other.data_dir == config.data_dir:
        raise CliError("--to names the same database as the current configuration")

    async def run() -> tuple[str, str, dict[str, int], list[str]]:
        source = cast(Engine, await _open(config))
        try:
            target = cast(Engine, await _open(other))
            try:
                # Both schemas up to date first: the copy is between two current layouts.
                await source.migrate(Server(config, AVAILABLE).migrations(source.dialect))
                await target.migrate(Server(other, AVAILABLE).migrations(target.dialect))
                report = await copy_storage(source, target, force=args.force)
            except TargetNotEmpty as exc:
                raise CliError(str(exc)) from exc
            finally:
                await target.close()
        finally:
            await source.close()
        return source.dialect, target.dialect, report.rows, report.skipped

    src, dst, rows, skipped = asyncio.run(run())
    width = max((len(t) for t in rows), default=5)
    for table, count in rows.items():
        print(f"{table:<{width}}  {count}")
    for table in skipped:
        print(f"{table:<{width}}  skipped: no such table in the target's schema")
    print(f"copied {sum(rows.values())} rows in {len(rows)} tables from {src} to {dst}")
    return 0


def cmd_cert(config: ServerConfig, args: argparse.Namespace) -> int:
    cert, key = ensure_certificate(args.domain, config.data_dir / "certs")
    print(f"certificate: {cert}\nkey: {key}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heron", description="Heron XMPP server")
    parser.add_argument("--version", action="version", version=f"heron {__version__}")
    parser.add_argument("-c", "--config", type=Path, help="TOML config (default: embedded)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, parents=[common])

    p = add("serve", "run the server")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the ports, each a cluster node (needs [cluster])",
    )
    p.add_argument("--node", default="", help=argparse.SUPPRESS)  # a worker's own name
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(fn=cmd_serve)
    add("check", "validate the configuration").set_defaults(fn=cmd_check)
    add("migrate", "apply the database schema migrations").set_defaults(fn=cmd_migrate)
    for name, fn, text in (
        ("adduser", cmd_adduser, "create an account"),
        ("passwd", cmd_passwd, "change an account's password"),
    ):
        p = add(name, text)
        p.add_argument("jid")
        p.add_argument("--password-stdin", action="store_true", help="read it from stdin")
        p.set_defaults(fn=fn)
    p = add("deluser", "delete an account")
    p.add_argument("jid")
    p.set_defaults(fn=cmd_deluser)
    p = add("users", "list accounts")
    p.add_argument("domain", nargs="?")
    p.set_defaults(fn=cmd_users)
    p = add("reports", "list spam and abuse reports (XEP-0377)")
    p.add_argument("domain", nargs="?")
    p.set_defaults(fn=cmd_reports)
    p = add("quarantine", "list what is held back from strangers")
    p.add_argument("domain", nargs="?")
    p.set_defaults(fn=cmd_quarantine)
    p = add("invite", "make an invitation token for registration (XEP-0445)")
    p.add_argument("domain")
    p.add_argument("--uses", type=int, default=1, help="accounts it may create (default 1)")
    p.add_argument("--days", type=float, default=7.0, help="days it stays valid (default 7)")
    p.set_defaults(fn=cmd_invite)
    p = add("copy-storage", "copy all data to the database another config names")
    p.add_argument("--to", type=Path, required=True, help="the other configuration file")
    p.add_argument("--force", action="store_true", help="replace data already in the target")
    p.set_defaults(fn=cmd_copy_storage)
    add_admin_commands(add)  # status, sessions, kick, reload: over the admin socket
    add_data_commands(add)  # import, export (XEP-0227)
    p = add("cert", "create a self-signed certificate for a domain")
    p.add_argument("domain")
    p.set_defaults(fn=cmd_cert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, known_modules=AVAILABLE)
    except ConfigError as exc:
        if not getattr(args, "any_config", False) or args.config is None:
            print(f"heron: configuration error: {exc}", file=sys.stderr)
            return 2
        config = data_dir_only(args.config)  # `heron reload`: the server judges the file
    setup_logging(config.logging.level, config.logging.format)
    try:
        code: int = args.fn(config, args)
    except CliError as exc:
        print(f"heron: {exc}", file=sys.stderr)
        return 1
    except StorageUnavailable as exc:
        print(f"heron: storage error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:  # found while starting (a module's options, its engine)
        print(f"heron: configuration error: {exc}", file=sys.stderr)
        return 2
    return code
