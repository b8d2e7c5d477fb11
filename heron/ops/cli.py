"""`heron status`, `heron sessions [JID]`, `heron kick JID`, `heron reload`: the admin
socket's client (the server must be running with the same data_dir)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from heron.config import ServerConfig
from heron.ops.socket import ask, socket_path, socket_paths

Add = Callable[[str, str], argparse.ArgumentParser]


class NotRunning(Exception):
    """No server answers on the admin socket."""


def _ask_all(config: ServerConfig, request: dict[str, Any]) -> list[Any]:
    """The answer of the server, or of each worker (heron serve --workers)."""
    paths = socket_paths(config.data_dir) or [socket_path(config.data_dir)]
    results = []
    for path in paths:
        try:
            answer = asyncio.run(ask(path, request))
        except (OSError, TimeoutError) as exc:
            raise NotRunning(f"no running server answers on {path} ({exc})") from exc
        if not answer.get("ok"):
            raise NotRunning(str(answer.get("error", "refused")))
        results.append(answer["result"])
    return results


def _ask(config: ServerConfig, request: dict[str, Any]) -> Any:
    """One answer: the server's, or the workers' merged (lists joined, counts added)."""
    results = _ask_all(config, request)
    if len(results) == 1 or not results:
        return results[0] if results else None
    if isinstance(results[0], list):
        return [item for result in results for item in result]
    return results


def data_dir_only(path: Path) -> ServerConfig:
    """Where the admin socket is when the file does not validate: `heron reload` must still
    reach the running server, which refuses the file and says why."""
    base = path.resolve().parent
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file).get("data_dir", "data")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        raw = "data"
    data_dir = Path(raw if isinstance(raw, str) and raw else "data").expanduser()
    return ServerConfig(data_dir=data_dir if data_dir.is_absolute() else base / data_dir)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _run(fn: Callable[[ServerConfig, argparse.Namespace], int]) -> Any:
    def wrapped(config: ServerConfig, args: argparse.Namespace) -> int:
        try:
            return fn(config, args)
        except NotRunning as exc:
            print(f"heron: {exc}", file=sys.stderr)
            return 1

    return wrapped


def cmd_status(config: ServerConfig, args: argparse.Namespace) -> int:
    results = _ask_all(config, {"cmd": "status"})
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    for result in results:
        _print_status(result)
    return 0


def _print_status(result: dict[str, Any]) -> None:
    print(f"Heron {result['version']}, up {result['uptime_s']:.0f} s")
    print(f"memory: {_size(result['memory_bytes'])}")
    print(f"sessions: {result['sessions']}")
    for host, counts in result["hosts"].items():
        detail = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "none"
        print(f"  {host}: {detail}")
    print(f"s2s peers: {', '.join(result['s2s_peers']) or 'none'}")
    print(f"components: {', '.join(result['components']) or 'none'}")
    print(f"rooms: {result['rooms']}")
    listeners = ", ".join(f"{k} {p}" for k, p in sorted(result["listeners"].items()))
    print(f"listeners: {listeners}")


def cmd_sessions(config: ServerConfig, args: argparse.Namespace) -> int:
    found = _ask(config, {"cmd": "sessions", "jid": args.jid})
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for s in found:
        flags = [s["transport"], f"from {s['peer']}", f"{s['connected_s']:.0f} s"]
        if s["hibernating"]:
            flags.append("hibernating")
        if not s["available"]:
            flags.append("unavailable")
        print(f"{s['jid']}  {'  '.join(flags)}")
    print(f"{len(found)} session(s)")
    return 0


def cmd_kick(config: ServerConfig, args: argparse.Namespace) -> int:
    ended = sum(r["ended"] for r in _ask_all(config, {"cmd": "kick", "jid": args.jid}))
    print(f"ended {ended} session(s)")
    return 0 if ended else 1


def cmd_reload(config: ServerConfig, args: argparse.Namespace) -> int:
    code = 0
    for result in _ask_all(config, {"cmd": "reload"}):
        for line in result["lines"]:
            print(line, file=sys.stdout if result["reloaded"] else sys.stderr)
        code = code or (0 if result["reloaded"] else 1)
    return code


def add_admin_commands(add: Add) -> None:
    """Register the subcommands that talk to a running server."""
    p = add("status", "show what the running server is doing")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(fn=_run(cmd_status), any_config=True)
    p = add("sessions", "list the running server's sessions (all, or of a JID)")
    p.add_argument("jid", nargs="?")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(fn=_run(cmd_sessions), any_config=True)
    p = add("kick", "end an account's sessions (bare JID) or one session (full JID)")
    p.add_argument("jid")
    p.set_defaults(fn=_run(cmd_kick), any_config=True)
    p = add("reload", "re-read the configuration file and certificates")
    p.set_defaults(fn=_run(cmd_reload), any_config=True)


def cmd_import(config: ServerConfig, args: argparse.Namespace) -> int:
    from heron.ops.pie import Importer, Report

    async def run() -> Report:
        from heron.core.accounts import AccountService
        from heron.core.server import Server, load_secret
        from heron.modules import AVAILABLE
        from heron.storage import open_database
        from heron.storage.accounts import SqlAccountStore
        from heron.storage.disabled import SqlDisabledAccounts

        config.data_dir.mkdir(parents=True, exist_ok=True)
        db = await open_database(config.storage, config.data_dir)
        try:
            await db.migrate(Server(config, AVAILABLE).migrations(db.dialect))
            secret = load_secret(config.server_secret_file or config.data_dir / "secret")
            accounts = AccountService(
                SqlAccountStore(db), secret, config.scram_iterations, SqlDisabledAccounts(db)
            )
            return await Importer(db, config, accounts).run(args.sources)
        finally:
            await db.close()

    report = asyncio.run(run())
    for line in report.lines():
        print(line, file=sys.stderr if line.startswith("failed") else sys.stdout)
    return 1 if report.failed else 0


def cmd_export(config: ServerConfig, args: argparse.Namespace) -> int:
    from heron.ops.pie import document, export_users

    async def run() -> list[tuple[str, Any]]:
        from heron.core.server import Server
        from heron.modules import AVAILABLE
        from heron.storage import open_database

        db = await open_database(config.storage, config.data_dir)
        try:
            await db.migrate(Server(config, AVAILABLE).migrations(db.dialect))
            return list(await export_users(db, config))
        finally:
            await db.close()

    users = asyncio.run(run())
    target: Path = args.target
    if args.per_user:
        # Prosody's xep0227 store: one user@host.xml a user, in its data directory.
        target.mkdir(parents=True, exist_ok=True)
        for domain, user in users:
            name = f"{user.attrs['name']}@{domain}.xml"
            (target / name).write_text(document([(domain, user)]), encoding="utf-8")
    else:
        target.write_text(document(users), encoding="utf-8")
    print(f"exported {len(users)} account(s) to {target}")
    return 0


def add_data_commands(add: Add) -> None:
    """heron import and heron export (XEP-0227)."""
    p = add("import", "import accounts and their data from XEP-0227 files (Prosody, ejabberd)")
    p.add_argument("sources", nargs="+", type=Path, help="a file, or a directory of *.xml")
    p.set_defaults(fn=cmd_import)
    p = add("export", "export accounts and their data as XEP-0227")
    p.add_argument("target", type=Path, help="the file to write (a directory with --per-user)")
    p.add_argument(
        "--per-user", action="store_true", help="one user@host.xml a user (Prosody's layout)"
    )
    p.set_defaults(fn=cmd_export)
