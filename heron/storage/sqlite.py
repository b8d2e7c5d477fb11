"""SQLite engine: one database file in WAL mode, driven from asyncio through one worker thread.

A single dedicated thread owns the `sqlite3.Connection`, so the event loop never blocks on
disk. Stores use the engine-neutral `Database` interface (`heron.storage.db`): each
statement is one hop to the thread, and `transaction()` holds the connection for its
block (other statements wait for it). `SqliteDatabase.run` sends a whole function to the
thread, for code that is SQLite's alone (and stores not yet written against `Database`).

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from heron.storage.db import (
    RECORD_VERSION,
    Column,
    Dialect,
    Executor,
    Row,
    check_migrations,
    pending,
)
from heron.storage.db import Migration as Migration  # re-exported for older imports
from heron.storage.db import MigrationError as MigrationError

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA_VERSIONS: Final = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class _FirstRow:
    """fetchrow and fetchval, from fetch."""

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        raise NotImplementedError

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: object) -> Any:
        row = await self.fetchrow(sql, *args)
        return row[0] if row is not None else None


class SqliteDatabase(_FirstRow):
    """One SQLite file, used from asyncio without blocking the loop."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._conn: sqlite3.Connection | None = conn
        # Held by a transaction() block for its whole length: the one connection is its.
        self._lock = asyncio.Lock()

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
        if self._lock.locked():  # a transaction() block holds the connection
            async with self._lock:
                return await self._run(_call, fn)
        return await self._run(_call, fn)

    async def _statement(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._lock.locked():
            async with self._lock:
                return await self._run(_plain, fn)
        return await self._run(_plain, fn)

    async def _run(
        self,
        call: Callable[[sqlite3.Connection, Callable[[sqlite3.Connection], T]], T],
        fn: Callable[[sqlite3.Connection], T],
    ) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError(f"database {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, call, conn, fn)

    # --- the engine-neutral interface (heron.storage.db.Database) ---------------------
    async def execute(self, sql: str, *args: object) -> int:
        return await self._statement(partial(_execute, sql=sql, args=args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self._statement(partial(_executemany, sql=sql, rows=list(rows)))

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return await self._statement(partial(_fetch, sql=sql, args=args))

    def transaction(self) -> _SqliteTransaction:
        return _SqliteTransaction(self)

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Sequence[Sequence[object]]
    ) -> None:
        """Append rows in one transaction and one hop to the thread (batch.BulkCopy): the
        write-behind batches (archive, offline) commit there, never on the event loop."""
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        await self.run(partial(_insert_all, sql=sql, rows=list(records)))

    # --- introspection (heron.storage.db.Introspection, for copy-storage) ---------------
    async def tables(self) -> list[str]:
        rows = await self.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
        return [str(row[0]) for row in rows]

    async def columns(self, table: str) -> list[Column]:
        rows = await self.fetch(f"PRAGMA table_info({_quoted(table)})")
        return [Column(str(r[1]), str(r[2]).lower(), int(r[5])) for r in rows]

    async def parents(self, table: str) -> set[str]:
        rows = await self.fetch(f"PRAGMA foreign_key_list({_quoted(table)})")
        return {str(r[2]) for r in rows}

    async def after_copy(self, table: str) -> None:
        return None  # INTEGER PRIMARY KEY continues from the largest value by itself

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
        for component, steps in check_migrations(migrations).items():
            await self.run(partial(_apply, component=component, steps=tuple(steps)))


class _SqliteTransaction(_FirstRow):
    """`async with db.transaction() as tx`: BEGIN IMMEDIATE … COMMIT, the connection held."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def __aenter__(self) -> Executor:
        await self._db._lock.acquire()
        try:
            # Not through _plain: it would commit the BEGIN at once, and every statement of
            # the block would then commit on its own (a rollback undoing nothing).
            await self._db._run(_direct, _begin)
        except BaseException:
            self._db._lock.release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._db._run(_plain, _rollback if exc_type is not None else _commit)
        finally:
            self._db._lock.release()

    async def execute(self, sql: str, *args: object) -> int:
        return await self._db._run(_plain, partial(_execute, sql=sql, args=args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self._db._run(_plain, partial(_executemany, sql=sql, rows=list(rows)))

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return await self._db._run(_plain, partial(_fetch, sql=sql, args=args))


# Statements of the engine-neutral interface. Outside a transaction() block each commits on
# its own; inside one, the block's BEGIN IMMEDIATE holds them until its COMMIT.
def _direct(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    return fn(conn)


def _begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _commit(conn: sqlite3.Connection) -> None:
    conn.commit()


def _rollback(conn: sqlite3.Connection) -> None:
    conn.rollback()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """One statement: on its own it commits (or rolls back on error); inside a
    transaction() block it leaves the block's transaction to the block."""
    inside = conn.in_transaction
    try:
        result = fn(conn)
    except BaseException:
        if not inside and conn.in_transaction:
            conn.rollback()
        raise
    if not inside and conn.in_transaction:
        conn.commit()
    return result


def _execute(conn: sqlite3.Connection, sql: str, args: Sequence[object]) -> int:
    return conn.execute(sql, args).rowcount


def _executemany(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[object]]) -> None:
    conn.executemany(sql, rows)


def _insert_all(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[object]]) -> None:
    with transaction(conn):
        conn.executemany(sql, rows)


def _fetch(conn: sqlite3.Connection, sql: str, args: Sequence[object]) -> list[Row]:
    return conn.execute(sql, args).fetchall()  # all rows now: RETURNING needs it


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
    for step in pending(component, None if row is None else row[0], steps):
        log.info("migrating %s to version %d", component, step.version)
        # executescript would commit on its own; run statements one by one in a transaction.
        with transaction(conn):
            for statement in _statements(step.sql):
                conn.execute(statement)
            conn.execute(RECORD_VERSION, (component, step.version))


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
