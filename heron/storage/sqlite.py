"""SQLite engine: one database file in WAL mode, driven from asyncio through one worker thread.

A single dedicated thread owns the `sqlite3.Connection`; `SqliteDatabase.run` sends a function
to it and awaits the result, so the event loop never blocks on disk.

Writes are committed before `run` returns. A single statement may use `with conn:`; several
statements that must succeed or fail together use `with transaction(conn):`, which also covers
DDL (Python's implicit transactions only start before INSERT/UPDATE/DELETE). If `fn` leaves a
transaction open, `run` rolls it back and raises: an uncommitted write is a bug, not a success.

Schema changes are `Migration` values applied by `migrate`, per component, each in its own
transaction, and recorded in `schema_versions`. A migration that has shipped is never edited:
fix forward with a new version.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA_VERSIONS: Final = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step of one component (`accounts`, `roster` …); versions start at 1."""

    component: str
    version: int
    sql: str


class MigrationError(Exception):
    """The migration list is inconsistent, or the database is newer than this code."""


class SqliteDatabase:
    """One SQLite file, used from asyncio without blocking the loop."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._conn: sqlite3.Connection | None = conn

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        """Open (creating it and its parent directory if needed) the database at `path`."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heron-sqlite")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        log.info("opened database %s", path)
        return cls(path, executor, conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the database thread and return its result."""
        conn = self._conn
        if conn is None:
            raise RuntimeError(f"database {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _call, conn, fn)

    async def close(self) -> None:
        """Close the connection and stop the worker thread; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, conn.close)
        finally:
            self._executor.shutdown(wait=True)

    async def migrate(self, migrations: Sequence[Migration]) -> None:
        """Apply, per component, the migrations newer than the recorded version, in order."""
        by_component: dict[str, list[Migration]] = {}
        for migration in migrations:
            by_component.setdefault(migration.component, []).append(migration)
        for component, steps in by_component.items():
            steps.sort(key=lambda m: m.version)
            versions = [m.version for m in steps]
            if len(set(versions)) != len(versions) or versions[0] < 1:
                raise MigrationError(f"{component}: migration versions must be unique and ≥ 1")
            await self.run(partial(_apply, component=component, steps=tuple(steps)))


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One explicit transaction (DDL included): committed on exit, rolled back on error."""
    if conn.in_transaction:
        raise RuntimeError("transaction() does not nest")
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _call(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    try:
        result = fn(conn)
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    if conn.in_transaction:
        conn.rollback()
        raise RuntimeError(f"{fn!r} left a transaction open; its writes were rolled back")
    return result


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread stays on: only the worker thread ever touches this connection.
    conn = sqlite3.connect(path, isolation_level="DEFERRED")
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            log.warning("database %s is not in WAL mode (%s)", path, mode)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        with transaction(conn):
            conn.execute(_SCHEMA_VERSIONS)
    except BaseException:
        conn.close()
        raise
    return conn


def _apply(conn: sqlite3.Connection, component: str, steps: tuple[Migration, ...]) -> None:
    row = conn.execute(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    ).fetchone()
    current = int(row[0]) if row is not None else 0
    latest = steps[-1].version
    if current > latest:
        raise MigrationError(
            f"{component}: database schema version {current} is newer than this code ({latest})"
        )
    for step in steps:
        if step.version <= current:
            continue
        log.info("migrating %s to version %d", component, step.version)
        # executescript would commit on its own; run statements one by one in a transaction.
        with transaction(conn):
            for statement in _statements(step.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, step.version),
            )


def _statements(sql: str) -> list[str]:
    """Split a migration script into complete statements (honours quotes and triggers)."""
    statements: list[str] = []
    current = ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
